// Edits of one Draw Trajectories track that keep its timing (README "Trajectory JSON").
//
// A track is the JSON track object with defaults filled in. Edits change it in place and return nothing, or
// return a message saying why they were refused (the editor then leaves the track as it was). Timing kept:
// points keep their frame when moved, inserted points take a free frame between their neighbours, deleted
// points take theirs along, and `lost_at` stays unless the track is extended to or past it.
import { passingFrames } from "./trajectory_timing.js";

export const FORMAT_VERSION = 2;
const TIMING_FIELDS = ["frames", "lost_at", "start_frame", "end_frame"];

export function round2(value) {
  return Math.round(value * 100) / 100;
}

// A track as the editor keeps it: the JSON track's fields (unknown ones kept), defaults filled in.
export function readTrack(raw, index) {
  return { ...raw, name: raw.name || `track ${index + 1}`, points: (raw.points || []).map(([x, y]) => [x, y]),
           interpolation: raw.interpolation || "polyline", tension: raw.tension ?? 0, easing: raw.easing || "linear" };
}

// The JSON track: only the fields that say something.
export function writeTrack(track) {
  const item = { ...track, points: track.points.map(([x, y]) => [round2(x), round2(y)]) };
  if (item.interpolation === "polyline") { delete item.interpolation; delete item.tension; }
  if (item.easing === "linear") delete item.easing;
  for (const key of TIMING_FIELDS) if (item[key] == null) delete item[key];
  return item;
}

// [first, last] frame of the track's motion in a clip of `frames` frames.
export function trackSpan(track, frames) {
  if (track.frames) return [track.frames[0], track.frames[track.frames.length - 1]];
  return [track.start_frame ?? 0, track.end_frame ?? frames - 1];
}

// Whole frames at which an untimed track passes its points (strictly increasing): its timing made explicit.
export function impliedFrames(track, frames) {
  const implied = [];
  passingFrames(track, frames).forEach((frame, i) =>
    implied.push(i === 0 ? Math.max(Math.round(frame), 0) : Math.max(Math.round(frame), implied[i - 1] + 1)));
  return implied;
}

// New start and end; a timed track's frames (and lost_at) are stretched to the new span.
export function retime(track, start, end, frames) {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start)
    return `start ${start} and end ${end} must be whole frames with 0 <= start <= end`;
  if (!track.frames) {
    track.start_frame = start;
    track.end_frame = end;
    return;
  }
  const [start0, end0] = trackSpan(track, frames);
  const stretched = track.frames.map((f) => end0 === start0 ? start : Math.round(start + (f - start0) * (end - start) / (end0 - start0)));
  if (stretched.some((f, i) => i > 0 && f <= stretched[i - 1]))
    return `${track.points.length} timed points do not fit between frames ${start} and ${end}`;
  if (track.lost_at != null) track.lost_at += stretched[stretched.length - 1] - end0;
  track.frames = stretched;
}

// Point p passes at `frame`: an untimed track becomes timed at its (eased) passing frames, then linear.
export function setPointFrame(track, p, frame, frames) {
  const timed = track.frames ? track.frames.slice() : impliedFrames(track, frames);
  const low = p > 0 ? timed[p - 1] + 1 : 0, high = p + 1 < timed.length ? timed[p + 1] - 1 : Infinity;
  if (!Number.isInteger(frame) || frame < low || frame > high)
    return `point ${p + 1}'s frame must be a whole frame from ${low}` + (high < Infinity ? ` to ${high}` : "");
  timed[p] = frame;
  if (!track.frames) track.easing = "linear";
  track.frames = timed;
  delete track.start_frame;
  delete track.end_frame;
  if (track.lost_at != null && timed[timed.length - 1] >= track.lost_at) delete track.lost_at;
}

// Drop the per-point frames: constant speed over the span they covered.
export function untime(track, frames) {
  const [start, end] = trackSpan(track, frames);
  delete track.frames;
  delete track.lost_at;
  track.start_frame = start;
  track.end_frame = end;
}

// The frame a point inserted at `index` (after the first point) of a timed track gets, or why there is none.
function frameForNewPoint(frames, index) {
  if (index === frames.length) {
    const gap = frames.length > 1 ? frames[frames.length - 1] - frames[frames.length - 2] : 1;
    return frames[frames.length - 1] + gap;
  }
  if (frames[index] - frames[index - 1] < 2)
    return `no free frame between frames ${frames[index - 1]} and ${frames[index]}: change a neighbour's frame first`;
  return Math.floor((frames[index - 1] + frames[index]) / 2);
}

export function insertPoint(track, index, position) {
  if (track.frames) {
    const frame = frameForNewPoint(track.frames, index);
    if (typeof frame === "string") return frame;
    track.frames.splice(index, 0, frame);
    if (track.lost_at != null && track.frames[track.frames.length - 1] >= track.lost_at) delete track.lost_at;
  }
  track.points.splice(index, 0, position);
}

export function deletePoint(track, index) {
  track.points.splice(index, 1);
  track.frames?.splice(index, 1);
  if (track.frames && track.frames.length === 0) delete track.frames;
}
