import { describe, expect, it } from "vitest";
import { mount } from "@vue/test-utils";
import InputsForm from "../components/InputsForm.vue";
import { fieldFor, fieldsFor, formBody, missingRequired } from "./inputs";

describe("fieldFor", () => {
  it("chooses a widget by input type", () => {
    const widgets = ["STRING", "INT", "FLOAT", "BOOLEAN", "ENUM", "MULTISELECT", "FILE", "JSON", "DATETIME", "SECRET"].map(
      (type) => fieldFor({ id: "x", type }).widget,
    );
    expect(widgets).toEqual(["text", "number", "number", "checkbox", "select", "multiselect", "file", "textarea", "datetime-local", "password"]);
  });

  it("is required only when required and without defaults", () => {
    expect(fieldFor({ id: "a", type: "STRING" }).required).toBe(true);
    expect(fieldFor({ id: "a", type: "STRING", defaults: "x" }).required).toBe(false);
    expect(fieldFor({ id: "a", type: "STRING", required: false }).required).toBe(false);
  });

  it("takes defaults as initial values, objects as JSON text", () => {
    expect(fieldFor({ id: "a", type: "INT", defaults: 3 }).initial).toBe("3");
    expect(fieldFor({ id: "a", type: "BOOLEAN", defaults: true }).initial).toBe(true);
    expect(fieldFor({ id: "a", type: "JSON", defaults: { k: 1 } }).initial).toBe('{\n  "k": 1\n}');
    expect(fieldFor({ id: "a", type: "MULTISELECT", values: ["x", "y"], defaults: ["y"] }).initial).toEqual(["y"]);
  });

  it("lists ENUM values and SELECT options", () => {
    expect(fieldFor({ id: "a", type: "ENUM", values: ["A", "B"] }).options).toEqual(["A", "B"]);
    expect(fieldFor({ id: "a", type: "SELECT", values: ["C"] }).options).toEqual(["C"]);
    expect(fieldFor({ id: "a", type: "SELECT", options: ["D"] }).options).toEqual(["D"]);
  });

  it("labels a field by its display name when it has one", () => {
    expect(fieldFor({ id: "a", type: "STRING", displayName: "The A" }).label).toBe("The A");
  });
});

describe("formBody", () => {
  const fields = fieldsFor([
    { id: "name", type: "STRING" },
    { id: "count", type: "INT", defaults: 1 },
    { id: "flag", type: "BOOLEAN" },
    { id: "tags", type: "MULTISELECT", values: ["a", "b", "c"] },
    { id: "when", type: "DATETIME" },
    { id: "doc", type: "FILE" },
  ]);

  it("sends strings, repeats multi-values, leaves empty fields out so defaults apply", () => {
    const file = new File(["hello"], "hello.txt");
    const body = formBody(fields, { name: "Ada", count: "", flag: false, tags: ["a", "c"], when: "2026-01-02T03:04", doc: file });
    expect(body.get("name")).toBe("Ada");
    expect(body.has("count")).toBe(false);
    expect(body.get("flag")).toBe("false");
    expect(body.getAll("tags")).toEqual(["a", "c"]);
    expect(body.get("when")).toBe("2026-01-02T03:04:00Z");
    expect((body.get("doc") as File).name).toBe("hello.txt");
  });

  it("names the required fields left empty", () => {
    expect(missingRequired(fields, { name: "", tags: [], flag: false })).toEqual(["name", "tags", "when", "doc"]);
  });
});

describe("InputsForm", () => {
  it("renders one control per input and submits the typed values", async () => {
    const wrapper = mount(InputsForm, {
      props: {
        inputs: [
          { id: "name", type: "STRING", defaults: "World" },
          { id: "level", type: "ENUM", values: ["LOW", "HIGH"], defaults: "LOW" },
          { id: "n", type: "INT" },
        ],
      },
    });
    expect(wrapper.find("input#input-name").element).toHaveProperty("value", "World");
    expect(wrapper.findAll("select#input-level option").map((o) => o.text())).toEqual(["(default)", "LOW", "HIGH"]);
    expect(wrapper.find("input#input-n").attributes("type")).toBe("number");

    await wrapper.find("form").trigger("submit");
    expect(wrapper.emitted("submit")).toBeUndefined();
    expect(wrapper.find(".field-error").text()).toBe("required");

    await wrapper.find("input#input-n").setValue("7");
    await wrapper.find("select#input-level").setValue("HIGH");
    await wrapper.find("form").trigger("submit");
    const body = wrapper.emitted("submit")![0][0] as FormData;
    expect([...body.entries()]).toEqual([
      ["name", "World"],
      ["level", "HIGH"],
      ["n", "7"],
    ]);
  });

  it("shows the server's problem next to its field", () => {
    const wrapper = mount(InputsForm, {
      props: { inputs: [{ id: "n", type: "INT" }], problems: [{ path: "inputs.n", message: "not an integer", line: null }] },
    });
    expect(wrapper.find(".field-error").text()).toBe("not an integer");
  });
});
