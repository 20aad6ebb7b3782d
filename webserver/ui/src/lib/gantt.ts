// Where each task run and each of its attempts sits on the execution's time axis, in percent.
import type { Execution, StateInfo, TaskRun } from "./api";
import { TERMINAL } from "./api";

export interface Bar {
  left: number;
  width: number;
  state: string;
}

export interface GanttRow {
  taskRun: TaskRun;
  label: string;
  depth: number;
  bar: Bar;
  attempts: Bar[];
  durationMs: number;
}

export interface GanttLayout {
  startMs: number;
  endMs: number;
  rows: GanttRow[];
}

const MIN_WIDTH = 0.5; // a bar stays visible even for an instant task

function span(state: StateInfo, nowMs: number): [number, number] {
  const dates = state.histories.map((h) => Date.parse(h.date));
  const start = dates.length ? dates[0] : nowMs;
  const end = TERMINAL.has(state.current) && dates.length ? dates[dates.length - 1] : nowMs;
  return [start, Math.max(start, end)];
}

function depthOf(taskRun: TaskRun, byId: Map<string, TaskRun>): number {
  let depth = 0;
  let parent = taskRun.parentTaskRunId ? byId.get(taskRun.parentTaskRunId) : undefined;
  while (parent && depth < 50) {
    depth += 1;
    parent = parent.parentTaskRunId ? byId.get(parent.parentTaskRunId) : undefined;
  }
  return depth;
}

export function ganttLayout(execution: Execution, nowMs: number): GanttLayout {
  const [startMs, execEnd] = span(execution.state, nowMs);
  const taskRuns = execution.taskRunList ?? [];
  const spans = taskRuns.map((tr) => span(tr.state, nowMs));
  const endMs = Math.max(execEnd, ...spans.map(([, end]) => end), startMs);
  const total = Math.max(endMs - startMs, 1);
  const bar = (from: number, to: number, state: string): Bar => {
    const left = ((from - startMs) / total) * 100;
    const width = Math.max(((to - from) / total) * 100, MIN_WIDTH);
    return { left: Math.min(left, 100 - MIN_WIDTH), width: Math.min(width, 100 - Math.min(left, 100 - MIN_WIDTH)), state };
  };
  const byId = new Map(taskRuns.map((tr) => [tr.id, tr]));
  const rows = taskRuns.map((taskRun, index) => {
    const [from, to] = spans[index];
    return {
      taskRun,
      label: taskRun.value ? `${taskRun.taskId} [${taskRun.value}]` : taskRun.taskId,
      depth: depthOf(taskRun, byId),
      bar: bar(from, to, taskRun.state.current),
      attempts: (taskRun.attempts ?? []).map((attempt) => {
        const [a, b] = span(attempt.state, nowMs);
        return bar(a, b, attempt.state.current);
      }),
      durationMs: to - from,
    };
  });
  return { startMs, endMs, rows };
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.round(seconds % 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}
