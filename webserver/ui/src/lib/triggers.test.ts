import { describe, expect, it } from "vitest";
import type { TriggerItem } from "./api";
import { shortType, triggerConfig, triggerStatus } from "./triggers";

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
