import { describe, expect, it } from "vitest";
import { stackedBars, successRatio, type DailyStatistics } from "./stats";

const day = (startDate: string, executionCounts: Record<string, number>): DailyStatistics => ({
  startDate,
  executionCounts,
  duration: { count: 0, sum: 0, avg: 0, min: null, max: null },
});

describe("stackedBars", () => {
  it("has one series per state seen, in Kestra's stacking order, zero on days without it", () => {
    const bars = stackedBars([day("2026-01-01", { FAILED: 1, SUCCESS: 3 }), day("2026-01-02", {}), day("2026-01-03", { SUCCESS: 2, ODDITY: 1 })]);
    expect(bars.days).toEqual(["2026-01-01", "2026-01-02", "2026-01-03"]);
    expect(bars.series.map((s) => [s.state, s.values])).toEqual([
      ["SUCCESS", [3, 0, 2]],
      ["FAILED", [1, 0, 0]],
      ["ODDITY", [0, 0, 1]],
    ]);
    expect(bars.total).toBe(7);
  });
});

describe("successRatio", () => {
  it("counts ended executions only, warnings as successes", () => {
    expect(successRatio([day("d", { SUCCESS: 2, WARNING: 1, FAILED: 1, RUNNING: 5 })])).toBe(0.75);
  });

  it("is null when nothing ended", () => {
    expect(successRatio([day("d", { RUNNING: 1 })])).toBeNull();
  });
});
