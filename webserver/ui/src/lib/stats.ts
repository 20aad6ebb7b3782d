// The dashboard's numbers, all from GET /stats/executions/daily (never from listing executions).

export interface DailyStatistics {
  startDate: string;
  executionCounts: Record<string, number>;
  duration: { count: number; sum: number; avg: number; min: number | null; max: number | null };
}

// stacking order and colours of Kestra's chart, bottom first
export const CHART_STATES: [string, string][] = [
  ["SUCCESS", "#21a366"],
  ["WARNING", "#f0a500"],
  ["FAILED", "#e0364f"],
  ["KILLED", "#8a5a44"],
  ["CANCELLED", "#b08a78"],
  ["RUNNING", "#1d7df2"],
  ["PAUSED", "#8b5cf6"],
  ["CREATED", "#7fb2f5"],
  ["QUEUED", "#9aa0b1"],
];

export interface StackedBars {
  days: string[];
  series: { state: string; color: string; values: number[] }[];
  total: number;
}

export function stackedBars(daily: DailyStatistics[]): StackedBars {
  const days = daily.map((d) => d.startDate);
  const seen = new Set(daily.flatMap((d) => Object.keys(d.executionCounts)));
  const known = new Set(CHART_STATES.map(([s]) => s));
  const states: [string, string][] = [
    ...CHART_STATES.filter(([s]) => seen.has(s)),
    ...[...seen].filter((s) => !known.has(s)).sort().map((s): [string, string] => [s, "#c0c4d0"]),
  ];
  const series = states.map(([state, color]) => ({
    state,
    color,
    values: daily.map((d) => d.executionCounts[state] ?? 0),
  }));
  const total = series.reduce((sum, s) => sum + s.values.reduce((a, b) => a + b, 0), 0);
  return { days, series, total };
}

/** Share of ended executions that succeeded (WARNING counts as success, as Kestra does). */
export function successRatio(daily: DailyStatistics[]): number | null {
  let ok = 0;
  let ended = 0;
  for (const day of daily) {
    for (const [state, count] of Object.entries(day.executionCounts)) {
      if (["SUCCESS", "WARNING"].includes(state)) ok += count;
      if (["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"].includes(state)) ended += count;
    }
  }
  return ended ? ok / ended : null;
}
