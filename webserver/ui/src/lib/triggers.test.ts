import { describe, expect, it } from "vitest";
import type { TriggerItem } from "./api";
import {
  backfillBody,
  backfillProgress,
  isFlowTrigger,
  isSchedule,
  shortType,
  triggerConfig,
  triggerStatus,
  withPending,
} from "./triggers";

function item(overrides: Partial<TriggerItem> = {}, disabled = false): TriggerItem {
  return {
    abstractTrigger: { id: "t", type: "io.kestra.plugin.core.trigger.Schedule", cron: "0 2 * * *" },
    triggerContext: { namespace: "n", flowId: "f", triggerId: "t", disabled },
    flowDisabled: false,
    triggerDisabled: false,
    ...overrides,
  };
}

describe("triggers", () => {
  it("shows the configuration without id, type, disabled and empty defaults", () => {
    expect(triggerConfig({ id: "t", type: "x", disabled: false, cron: "* * * * *", inputs: { a: 1 } })).toBe(
      'cron: * * * * *, inputs: {"a":1}',
    );
    expect(triggerConfig({ id: "t", type: "x", cron: "0 2 * * *", conditions: [], inputs: {}, wait: false })).toBe(
      "cron: 0 2 * * *, wait: false",
    );
  });

  it("says why a trigger does not fire, the flow first", () => {
    expect(triggerStatus(item())).toBe("enabled");
    expect(triggerStatus(item({}, true))).toBe("disabled");
    expect(triggerStatus(item({ triggerDisabled: true }, true))).toBe("disabled (in the flow)");
    expect(triggerStatus(item({ flowDisabled: true, triggerDisabled: true }))).toBe("disabled (flow)");
  });

  it("names the type by its last segment", () => {
    expect(shortType("io.kestra.plugin.core.trigger.Webhook")).toBe("Webhook");
  });
});

describe("trigger changes", () => {
  const context = (over: Partial<TriggerItem["triggerContext"]> = {}) => ({
    namespace: "n",
    flowId: "f",
    triggerId: "t",
    disabled: false,
    ...over,
  });

  it("knows Flow triggers (not toggled through the API) and schedules (backfilled)", () => {
    expect(isFlowTrigger(item({ abstractTrigger: { id: "t", type: "io.kestra.plugin.core.trigger.Flow" } }))).toBe(true);
    expect(isFlowTrigger(item())).toBe(false);
    expect(isSchedule(item())).toBe(true);
    expect(isSchedule(item({ abstractTrigger: { id: "t", type: "io.kestra.plugin.core.trigger.Webhook" } }))).toBe(false);
  });

  it("measures a backfill's progress from its current date", () => {
    const start = "2026-01-01T00:00:00Z";
    const end = "2026-01-01T10:00:00Z";
    expect(backfillProgress({ start, end })).toBe(0);
    expect(backfillProgress({ start, end, currentDate: "2026-01-01T02:30:00Z" })).toBe(0.25);
    expect(backfillProgress({ start, end, currentDate: "2026-01-02T00:00:00Z" })).toBe(1);
    expect(backfillProgress({ start, end: null, currentDate: start })).toBe(0);
  });

  it("builds a backfill body without the empty fields", () => {
    const form = { start: "2026-01-01T00:00", end: "", labels: [{ key: " ", value: "x" }] };
    expect(backfillBody(form, null)).toEqual({ start: new Date("2026-01-01T00:00").toISOString() });
    const inputs = new FormData();
    inputs.append("name", "a");
    inputs.append("tags", "x");
    inputs.append("tags", "y");
    inputs.append("file", new Blob(["z"]), "z.txt");
    const body = backfillBody(
      { start: "2026-01-01T00:00", end: "2026-01-02T00:00", labels: [{ key: " team ", value: "data" }] },
      inputs,
    );
    expect(body.end).toBe(new Date("2026-01-02T00:00").toISOString());
    expect(body.labels).toEqual([{ key: "team", value: "data" }]);
    expect(body.inputs).toEqual({ name: "a", tags: ["x", "y"] });
  });

  it("shows an answered change until the search has a state as recent", () => {
    const searched = item({ triggerContext: context({ date: "2026-01-01T00:00:00Z" }) });
    const answer = context({ disabled: true, date: "2026-01-01T00:00:05Z" });
    const pending = new Map([["n/f/t", { context: answer, at: 1000 }]]);
    expect(withPending([searched], pending, 2000)[0].triggerContext.disabled).toBe(true);
    expect(pending.size).toBe(1);
    // the scheduler applied it: its state is newer, the search wins and the change is forgotten
    const applied = item({ triggerContext: context({ disabled: true, date: "2026-01-01T00:00:06Z" }) });
    expect(withPending([applied], pending, 3000)[0]).toBe(applied);
    expect(pending.size).toBe(0);
    // never applied (the scheduler dropped it): the search wins after a while
    pending.set("n/f/t", { context: answer, at: 1000 });
    expect(withPending([searched], pending, 1000 + 31_000)[0]).toBe(searched);
  });
});
