// The "Execute" form generated from a flow's typed inputs: one field per input, and the
// multipart body the create-execution endpoint takes (it coerces strings by input type).
import type { FlowInput } from "./api";

export type Widget =
  | "text"
  | "textarea"
  | "number"
  | "checkbox"
  | "select"
  | "multiselect"
  | "file"
  | "datetime-local"
  | "date"
  | "time"
  | "password"
  | "email"
  | "url";

export type FieldValue = string | boolean | string[] | File | null;

export interface Field {
  id: string;
  label: string;
  type: string;
  widget: Widget;
  required: boolean;
  description?: string;
  options: string[];
  step?: string;
  placeholder?: string;
  initial: FieldValue;
}

const WIDGETS: Record<string, Widget> = {
  STRING: "text",
  INT: "number",
  FLOAT: "number",
  BOOLEAN: "checkbox",
  BOOL: "checkbox",
  ENUM: "select",
  SELECT: "select",
  MULTISELECT: "multiselect",
  DATETIME: "datetime-local",
  DATE: "date",
  TIME: "time",
  FILE: "file",
  JSON: "textarea",
  YAML: "textarea",
  ARRAY: "textarea",
  SECRET: "password",
  EMAIL: "email",
  URI: "url",
  DURATION: "text",
};

function optionsOf(input: FlowInput): string[] {
  const source = input.values ?? input.options;
  if (Array.isArray(source)) return source.map(String);
  return [];
}

function initialOf(input: FlowInput, widget: Widget): FieldValue {
  const value = input.defaults;
  if (widget === "checkbox") return value === true || value === "true";
  if (widget === "multiselect") return Array.isArray(value) ? value.map(String) : [];
  if (widget === "file") return null;
  if (value === undefined || value === null) return widget === "select" ? "" : "";
  if (widget === "textarea" && typeof value === "object") return JSON.stringify(value, null, 2);
  if (widget === "datetime-local" && typeof value === "string") return value.replace(/Z$/, "").slice(0, 19);
  return String(value);
}

export function fieldFor(input: FlowInput): Field {
  const widget = WIDGETS[input.type] ?? "text";
  const placeholders: Record<string, string> = {
    DURATION: "PT1H30M",
    JSON: '{"key": "value"}',
    ARRAY: '["a", "b"]',
    YAML: "key: value",
    URI: "https://",
  };
  return {
    id: input.id,
    label: input.displayName || input.id,
    type: input.type,
    widget,
    required: input.required !== false && input.defaults === undefined,
    description: input.description,
    options: optionsOf(input),
    step: input.type === "FLOAT" ? "any" : input.type === "INT" ? "1" : undefined,
    placeholder: placeholders[input.type],
    initial: initialOf(input, widget),
  };
}

export function fieldsFor(inputs: FlowInput[] | undefined): Field[] {
  return (inputs ?? []).map(fieldFor);
}

/** Fields the user must fill and left empty, by id: checked before any request. */
export function missingRequired(fields: Field[], values: Record<string, FieldValue>): string[] {
  return fields
    .filter((f) => f.required && f.widget !== "checkbox")
    .filter((f) => {
      const value = values[f.id];
      return value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length);
    })
    .map((f) => f.id);
}

/** The multipart body: empty optional fields left out so that the flow's defaults apply. */
export function formBody(fields: Field[], values: Record<string, FieldValue>): FormData {
  const body = new FormData();
  for (const field of fields) {
    const value = values[field.id];
    if (value === null || value === undefined || value === "") continue;
    if (field.widget === "checkbox") body.append(field.id, value ? "true" : "false");
    else if (Array.isArray(value)) value.forEach((item) => body.append(field.id, item));
    else if (typeof value === "object") body.append(field.id, value as File, (value as File).name);
    else if (field.widget === "datetime-local" && !/[zZ]|[+-]\d\d:\d\d$/.test(String(value)))
      body.append(field.id, `${value}${String(value).length === 16 ? ":00" : ""}Z`);
    else body.append(field.id, String(value));
  }
  return body;
}
