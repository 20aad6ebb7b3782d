import type { TriggerItem } from "./api";

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
