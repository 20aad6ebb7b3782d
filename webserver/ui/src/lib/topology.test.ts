import { describe, expect, it } from "vitest";
import { layoutGraph, type FlowGraph } from "./topology";

const H = "io.kestra.core.models.hierarchies.";
const task = (uid: string, type = "io.kestra.plugin.core.log.Log") => ({ uid, type: `${H}GraphTask`, task: { id: uid, type } });
const edge = (source: string, target: string, relationType = "SEQUENTIAL", value?: string) => ({
  source,
  target,
  relation: value ? { relationType, value } : { relationType },
});

// root.start → first → fan(left ‖ inner(deep)) → root.end
const GRAPH: FlowGraph = {
  nodes: [
    { uid: "root.start", type: `${H}GraphClusterRoot` },
    { uid: "root.end", type: `${H}GraphClusterEnd` },
    task("first"),
    { uid: "fan", type: `${H}GraphClusterRoot`, task: { id: "fan", type: "io.kestra.plugin.core.flow.Parallel" } },
    { uid: "fan.end", type: `${H}GraphClusterEnd` },
    task("left"),
    { uid: "inner", type: `${H}GraphClusterRoot`, task: { id: "inner", type: "io.kestra.plugin.core.flow.Sequential" } },
    { uid: "inner.end", type: `${H}GraphClusterEnd` },
    task("deep"),
  ],
  edges: [
    edge("root.start", "first"),
    edge("first", "fan"),
    edge("fan", "left", "PARALLEL"),
    edge("fan", "inner", "PARALLEL"),
    edge("inner", "deep"),
    edge("deep", "inner.end"),
    edge("inner.end", "fan.end"),
    edge("left", "fan.end"),
    edge("fan.end", "root.end"),
  ],
  clusters: [
    {
      cluster: { uid: "cluster_fan", type: `${H}GraphCluster`, taskNode: { uid: "fan", task: { id: "fan", type: "Parallel" } } },
      nodes: ["fan", "fan.end", "left", "inner", "inner.end", "deep"],
      parents: [],
      start: "fan",
      end: "fan.end",
    },
    {
      cluster: { uid: "cluster_inner", type: `${H}GraphCluster`, taskNode: { uid: "inner", task: { id: "inner", type: "Sequential" } } },
      nodes: ["inner", "inner.end", "deep"],
      parents: ["cluster_fan"],
      start: "inner",
      end: "inner.end",
    },
  ],
};

describe("layoutGraph", () => {
  it("nests each node in its innermost cluster, clusters in their parent", async () => {
    const { nodes } = await layoutGraph(GRAPH);
    const parent = Object.fromEntries(nodes.map((n) => [n.id, n.parentNode]));
    expect(parent).toMatchObject({
      first: undefined,
      cluster_fan: undefined,
      left: "cluster_fan",
      cluster_inner: "cluster_fan",
      deep: "cluster_inner",
      inner: "cluster_inner",
    });
    // a parent comes before its children: Vue Flow needs it so
    const order = nodes.map((n) => n.id);
    expect(order.indexOf("cluster_fan")).toBeLessThan(order.indexOf("cluster_inner"));
    expect(order.indexOf("cluster_inner")).toBeLessThan(order.indexOf("deep"));
  });

  it("keeps children inside their cluster's box", async () => {
    const { nodes } = await layoutGraph(GRAPH);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    for (const node of nodes.filter((n) => n.parentNode)) {
      const box = byId.get(node.parentNode!)!;
      expect(node.position.x).toBeGreaterThanOrEqual(0);
      expect(node.position.y).toBeGreaterThanOrEqual(0);
      expect(node.position.x + node.width).toBeLessThanOrEqual(box.width);
      expect(node.position.y + node.height).toBeLessThanOrEqual(box.height);
    }
  });

  it("reads left to right along sequential edges", async () => {
    const { nodes } = await layoutGraph(GRAPH);
    const x = Object.fromEntries(nodes.map((n) => [n.id, n.position.x]));
    expect(x["root.start"]).toBeLessThan(x.first);
    expect(x.first).toBeLessThan(x.cluster_fan);
    expect(x.cluster_fan).toBeLessThan(x["root.end"]);
    expect(x.inner).toBeLessThan(x.deep);
  });

  it("colours tasks by the state of their task run and labels choice edges", async () => {
    const graph: FlowGraph = {
      nodes: [{ uid: "root.start", type: `${H}GraphClusterRoot` }, task("a"), task("b")],
      edges: [edge("root.start", "a"), edge("a", "b", "CHOICE", "then")],
      clusters: [],
    };
    const { nodes, edges } = await layoutGraph(graph, { a: "FAILED" });
    const a = nodes.find((n) => n.id === "a")!;
    expect(a.data).toMatchObject({ kind: "task", label: "a", taskType: "Log", state: "FAILED" });
    expect(nodes.find((n) => n.id === "b")!.data.state).toBeUndefined();
    expect(edges[1]).toMatchObject({ label: "then", class: "edge-choice" });
  });
});
