// The flow graph from the API (Kestra's shape) laid out by ELK into Vue Flow nodes and edges:
// each cluster (a nested flowable) is a group node holding its children, positions relative to it.
import ELK, { type ElkExtendedEdge, type ElkNode } from "elkjs/lib/elk.bundled.js";

export interface GraphNode {
  uid: string;
  type: string;
  task?: { id: string; type: string };
  trigger?: { id: string; type: string };
}

export interface GraphEdge {
  source: string;
  target: string;
  relation: { relationType: string; value?: string };
}

export interface GraphCluster {
  cluster: { uid: string; type: string; taskNode?: { uid: string; task: { id: string; type: string } } };
  nodes: string[];
  parents: string[];
  start: string;
  end: string;
}

export interface FlowGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  clusters: GraphCluster[];
}

export type Kind = "task" | "trigger" | "start" | "end" | "cluster";

export interface LaidNode {
  id: string;
  type: string; // the Vue Flow node type
  position: { x: number; y: number };
  parentNode?: string;
  data: { kind: Kind; label: string; taskType?: string; state?: string };
  style: Record<string, string>;
  width: number;
  height: number;
}

export interface LaidEdge {
  id: string;
  source: string;
  target: string;
  label?: string;
  class: string;
}

const TASK = { width: 200, height: 56 };
const DOT = { width: 20, height: 20 };
const PADDING = "[top=36,left=16,bottom=16,right=16]";

function kindOf(node: GraphNode): Kind {
  if (node.type.endsWith("GraphTrigger")) return "trigger";
  if (node.type.endsWith("GraphClusterEnd")) return "end";
  if (node.type.endsWith("GraphClusterRoot")) return node.task ? "task" : "start";
  return "task";
}

function shortType(type: string | undefined): string {
  return type ? type.split(".").pop()! : "";
}

/** The innermost cluster of each node: a node listed by several clusters belongs to the deepest. */
function owners(graph: FlowGraph): Map<string, string> {
  const byDepth = [...graph.clusters].sort((a, b) => a.parents.length - b.parents.length);
  const owner = new Map<string, string>();
  for (const c of byDepth) for (const uid of c.nodes) owner.set(uid, c.cluster.uid);
  return owner;
}

export async function layoutGraph(graph: FlowGraph, states: Record<string, string> = {}): Promise<{ nodes: LaidNode[]; edges: LaidEdge[] }> {
  const owner = owners(graph);
  const clusterParent = new Map(graph.clusters.map((c) => [c.cluster.uid, c.parents[c.parents.length - 1]]));
  const elkNodes = new Map<string, ElkNode>();
  const root: ElkNode = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.hierarchyHandling": "INCLUDE_CHILDREN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "48",
      "elk.spacing.nodeNode": "24",
    },
    children: [],
    edges: [],
  };
  for (const c of graph.clusters) {
    elkNodes.set(c.cluster.uid, { id: c.cluster.uid, children: [], layoutOptions: { "elk.padding": PADDING } });
  }
  for (const n of graph.nodes) {
    const kind = kindOf(n);
    elkNodes.set(n.uid, { id: n.uid, ...(kind === "start" || kind === "end" ? DOT : TASK) });
  }
  const parentOf = (id: string) => (graph.clusters.some((c) => c.cluster.uid === id) ? clusterParent.get(id) : owner.get(id));
  for (const [id, node] of elkNodes) {
    const parent = parentOf(id);
    (parent ? elkNodes.get(parent)! : root).children!.push(node);
  }
  root.edges = graph.edges.map(
    (e, i): ElkExtendedEdge => ({ id: `e${i}`, sources: [e.source], targets: [e.target] }),
  );
  const laid = await new ELK().layout(root);

  const nodes: LaidNode[] = [];
  const byUid = new Map(graph.nodes.map((n) => [n.uid, n]));
  const clusterTitle = new Map(graph.clusters.map((c) => [c.cluster.uid, c.cluster.taskNode?.task.id ?? "Triggers"]));
  const visit = (node: ElkNode, parent?: string) => {
    for (const child of node.children ?? []) {
      const source = byUid.get(child.id);
      const kind: Kind = source ? kindOf(source) : "cluster";
      const taskId = source?.task?.id ?? source?.trigger?.id;
      const width = child.width ?? 0;
      const height = child.height ?? 0;
      nodes.push({
        id: child.id,
        type: kind === "cluster" ? "cluster" : kind === "start" || kind === "end" ? "dot" : "task",
        position: { x: child.x ?? 0, y: child.y ?? 0 },
        parentNode: parent,
        data: {
          kind,
          label: kind === "cluster" ? clusterTitle.get(child.id)! : taskId ?? "",
          taskType: shortType(source?.task?.type ?? source?.trigger?.type),
          state: taskId && kind === "task" ? states[taskId] : undefined,
        },
        style: { width: `${width}px`, height: `${height}px` },
        width,
        height,
      });
      visit(child, child.id);
    }
  };
  visit(laid);
  const edges = graph.edges.map((e, i) => ({
    id: `e${i}`,
    source: e.source,
    target: e.target,
    label: e.relation.value,
    class: `edge-${e.relation.relationType.toLowerCase()}`,
  }));
  return { nodes, edges };
}
