import { describe, expect, it } from "vitest";
import type { Execution, StateInfo } from "./api";
import { formatDuration, ganttLayout } from "./gantt";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const state = (current: string, ...steps: [string, number][]): StateInfo => ({
  current,
  histories: steps.map(([s, t]) => ({ state: s, date: at(t) })),
});

function execution(): Execution {
  return {
    id: "e",
    namespace: "n",
    flowId: "f",
    flowRevision: 1,
    state: state("FAILED", ["CREATED", 0], ["RUNNING", 1], ["FAILED", 10]),
    taskRunList: [
      {
        id: "t1",
        taskId: "first",
        state: state("SUCCESS", ["CREATED", 0], ["RUNNING", 1], ["SUCCESS", 5]),
        attempts: [{ state: state("SUCCESS", ["RUNNING", 1], ["SUCCESS", 5]) }],
      },
      {
        id: "t2",
        taskId: "second",
        state: state("FAILED", ["CREATED", 5], ["RUNNING", 5], ["FAILED", 10]),
        attempts: [
          { state: state("FAILED", ["RUNNING", 5], ["FAILED", 7]) },
          { state: state("FAILED", ["RUNNING", 8], ["FAILED", 10]) },
        ],
      },
      { id: "t3", taskId: "child", parentTaskRunId: "t2", value: "a", state: state("SUCCESS", ["CREATED", 6], ["SUCCESS", 6]) },
    ],
  };
}

describe("ganttLayout", () => {
  it("places each task run on the execution's axis in percent", () => {
    const layout = ganttLayout(execution(), T0 + 60_000);
    expect(layout.endMs - layout.startMs).toBe(10_000);
    const [first, second] = layout.rows;
    expect(first.bar).toEqual({ left: 0, width: 50, state: "SUCCESS" });
    expect(second.bar).toEqual({ left: 50, width: 50, state: "FAILED" });
    expect(second.durationMs).toBe(5000);
  });

  it("keeps every attempt, each with its own state", () => {
    const second = ganttLayout(execution(), T0).rows[1];
    expect(second.attempts.map((a) => a.state)).toEqual(["FAILED", "FAILED"]);
    expect(second.attempts[1].left).toBe(80);
  });

  it("indents children under their parent and names them by value", () => {
    const child = ganttLayout(execution(), T0).rows[2];
    expect(child.depth).toBe(1);
    expect(child.label).toBe("child [a]");
    expect(child.bar.width).toBeGreaterThan(0); // an instant task stays visible
  });

  it("stretches a running execution up to now", () => {
    const running = execution();
    running.state = state("RUNNING", ["CREATED", 0], ["RUNNING", 1]);
    running.taskRunList![1].state = state("RUNNING", ["CREATED", 5], ["RUNNING", 5]);
    const layout = ganttLayout(running, T0 + 20_000);
    expect(layout.endMs).toBe(T0 + 20_000);
    expect(layout.rows[1].bar).toEqual({ left: 25, width: 75, state: "RUNNING" });
  });
});

describe("formatDuration", () => {
  it("reads like Kestra's durations", () => {
    expect([formatDuration(250), formatDuration(2500), formatDuration(75_000), formatDuration(3_700_000)]).toEqual([
      "250ms",
      "2.50s",
      "1m 15s",
      "1h 1m",
    ]);
  });
});
