/** Great-circle geometry for nearest-region decisions. */
import type { RegionInfo } from './types.js';

const EARTH_RADIUS_KM = 6371;

export interface LatLon {
  lat: number;
  lon: number;
}

/** Haversine distance in kilometres. */
export function greatCircleKm(a: LatLon, b: LatLon): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** The candidate nearest to `from`, ties broken by region id so every caller picks the same one. */
export function nearestRegion<R extends RegionInfo>(from: LatLon, candidates: readonly R[]): R | undefined {
  let best: R | undefined;
  let bestKm = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const km = greatCircleKm(from, c);
    if (km < bestKm || (km === bestKm && best !== undefined && c.id < best.id)) {
      best = c;
      bestKm = km;
    }
  }
  return best;
}
