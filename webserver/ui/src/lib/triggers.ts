import type { Backfill, BackfillCreate, TriggerContext, TriggerItem } from "./api";
import { isoDate } from "./dates";

// What sets a trigger apart (its cron, its conditions...), without the id and type shown beside
// it, nor the empty defaults the server fills in (conditions: [], inputs: {}).
export function triggerConfig(trigger: Record<string, unknown>): string {
  const { id: _id, type: _type, disabled: _disabled, ...rest } = trigger;
  return Object.entries(rest)
    .filter(([, value]) => !isEmpty(value))
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}

// Why a trigger does not fire, or "enabled": the flow, its declaration, or the API toggle.
export function triggerStatus(item: TriggerItem): string {
  if (item.flowDisabled) return "disabled (flow)";
  if (item.triggerDisabled) return "disabled (in the flow)";
  if (item.triggerContext.disabled) return "disabled";
  return "enabled";
}

export function shortType(type: string): string {
  return type.split(".").pop() ?? type;
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === "object" && Object.keys(value as object).length === 0;
}

// A Flow trigger is evaluated by the executor from the flow's source: the API cannot toggle it.
export function isFlowTrigger(item: TriggerItem): boolean {
  return /(^|\.)trigger\.Flow$/.test(item.abstractTrigger.type) || item.abstractTrigger.type === "Flow";
}

export function isSchedule(item: TriggerItem): boolean {
  return /(^|\.)Schedule$/.test(item.abstractTrigger.type);
}

// How far a backfill went, 0 to 1: its next date to replay between its start and its end.
export function backfillProgress(backfill: Backfill): number {
  const start = Date.parse(backfill.start);
  const end = backfill.end ? Date.parse(backfill.end) : NaN;
  const current = backfill.currentDate ? Date.parse(backfill.currentDate) : start;
  if (Number.isNaN(start) || Number.isNaN(end) || Number.isNaN(current) || end <= start) return 0;
  return Math.min(1, Math.max(0, (current - start) / (end - start)));
}

export interface BackfillForm {
  start: string; // datetime-local values: the user's local time
  end: string;
  labels: { key: string; value: string }[];
}

// The body of PUT /triggers for a new backfill; empty end, labels and inputs left out.
export function backfillBody(form: BackfillForm, inputs: FormData | null): BackfillCreate {
  const body: BackfillCreate = { start: isoDate(form.start) ?? form.start };
  const end = isoDate(form.end);
  if (end) body.end = end;
  const labels = form.labels.filter((l) => l.key.trim()).map((l) => ({ key: l.key.trim(), value: l.value }));
  if (labels.length) body.labels = labels;
  const values: Record<string, unknown> = {};
  inputs?.forEach((value, name) => {
    if (typeof value !== "string") return; // a file cannot travel in a JSON backfill
    const previous = values[name];
    if (previous === undefined) values[name] = value;
    else values[name] = Array.isArray(previous) ? [...previous, value] : [previous, value];
  });
  if (Object.keys(values).length) body.inputs = values;
  return body;
}

export function triggerKey(context: TriggerContext): string {
  return `${context.namespace}/${context.flowId}/${context.triggerId}`;
}

// A change answered by the API shows at once; the search shows it only once the scheduler applied
// it (its state is then at least as recent). Until then, or for `keepMs`, the answer wins.
export function withPending(
  items: TriggerItem[],
  pending: Map<string, { context: TriggerContext; at: number }>,
  now: number,
  keepMs = 30_000,
): TriggerItem[] {
  return items.map((item) => {
    const key = triggerKey(item.triggerContext);
    const change = pending.get(key);
    if (!change) return item;
    const stored = item.triggerContext.date ? Date.parse(item.triggerContext.date) : 0;
    const asked = change.context.date ? Date.parse(change.context.date) : 0;
    if (stored >= asked || now - change.at > keepMs) {
      pending.delete(key);
      return item;
    }
    return { ...item, triggerContext: { ...item.triggerContext, ...change.context } };
  });
}
