/**
 * Simulated users of the lab: placed in large metropolitan areas around the world, weighted roughly
 * by their internet population, each reaching its nearest live edge over its own last-mile and
 * long-haul delay.
 */
import { greatCircleKm, type LatLon } from '../core/geo.js';

export interface City extends LatLon {
  name: string;
  /** Relative share of users. */
  weight: number;
}

export const CITIES: readonly City[] = [
  { name: 'New York', lat: 40.7, lon: -74.0, weight: 10 },
  { name: 'Chicago', lat: 41.9, lon: -87.6, weight: 5 },
  { name: 'San Francisco', lat: 37.8, lon: -122.4, weight: 6 },
  { name: 'Toronto', lat: 43.7, lon: -79.4, weight: 3 },
  { name: 'Mexico City', lat: 19.4, lon: -99.1, weight: 4 },
  { name: 'São Paulo', lat: -23.5, lon: -46.6, weight: 6 },
  { name: 'London', lat: 51.5, lon: -0.1, weight: 7 },
  { name: 'Paris', lat: 48.9, lon: 2.35, weight: 5 },
  { name: 'Berlin', lat: 52.5, lon: 13.4, weight: 5 },
  { name: 'Dublin', lat: 53.3, lon: -6.3, weight: 2 },
  { name: 'Lagos', lat: 6.5, lon: 3.4, weight: 3 },
  { name: 'Mumbai', lat: 19.1, lon: 72.9, weight: 6 },
  { name: 'Singapore', lat: 1.35, lon: 103.8, weight: 3 },
  { name: 'Tokyo', lat: 35.7, lon: 139.7, weight: 8 },
  { name: 'Seoul', lat: 37.6, lon: 127.0, weight: 5 },
  { name: 'Shanghai', lat: 31.2, lon: 121.5, weight: 4 },
  { name: 'Sydney', lat: -33.9, lon: 151.2, weight: 3 },
];

/** Last-mile delay every user pays, even next to an edge. */
export const LAST_MILE_MS = 4;
/**
 * Long-haul: light in fibre covers ~204 km/ms, and real paths are ~1.5x the great circle, so about
 * 136 km per millisecond one way.
 */
export const KM_PER_MS = 136;

export function userOneWayMs(user: LatLon, edge: LatLon): number {
  return LAST_MILE_MS + greatCircleKm(user, edge) / KM_PER_MS;
}

export interface SimUser {
  id: string;
  city: string;
  lat: number;
  lon: number;
  /** Latest Meridian-Version token this user saw (sent on reads for read-your-writes). */
  token: string | undefined;
  /** Cookies the edges set (name -> value). */
  cookies: Map<string, string>;
  /** Whether this user's account exists: unknown until a read tells, then created once if missing. */
  account: 'unknown' | 'missing' | 'ready';
}

/** `count` users spread over CITIES by weight, deterministic for a given count (seeded by index). */
export function makeUsers(count: number): SimUser[] {
  const total = CITIES.reduce((s, c) => s + c.weight, 0);
  const users: SimUser[] = [];
  for (let i = 0; i < count; i++) {
    // Walk the cumulative weights at evenly spaced points so the split is exact, not random.
    const point = ((i + 0.5) / count) * total;
    let acc = 0;
    let city = CITIES[0] as City;
    for (const c of CITIES) {
      acc += c.weight;
      if (point <= acc) {
        city = c;
        break;
      }
    }
    // A little spread around the city centre, so users are not all on one point.
    const jitter = ((i * 7919) % 100) / 100 - 0.5;
    users.push({
      id: `u${String(i + 1).padStart(3, '0')}`,
      city: city.name,
      lat: city.lat + jitter,
      lon: city.lon + jitter,
      token: undefined,
      cookies: new Map(),
      account: 'unknown',
    });
  }
  return users;
}
