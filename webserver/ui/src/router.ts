import { createRouter, createWebHistory } from "vue-router";
// in the main bundle (7 kB): the executions list is the page to paint fastest, one request
// fewer before its search starts
import ExecutionsPage from "./pages/ExecutionsPage.vue";

// Kestra's UI paths, so a bookmarked Kestra link lands on the same page.
export const router = createRouter({
  history: createWebHistory("/ui/"),
  routes: [
    { path: "/", name: "home", component: () => import("./pages/DashboardPage.vue") },
    { path: "/dashboards", redirect: "/" },
    { path: "/flows", name: "flows", component: () => import("./pages/FlowsPage.vue") },
    { path: "/flows/new", name: "flow-new", component: () => import("./pages/FlowPage.vue") },
    {
      path: "/flows/edit/:namespace/:id/:tab?",
      name: "flow",
      component: () => import("./pages/FlowPage.vue"),
      props: true,
    },
    { path: "/executions", name: "executions", component: ExecutionsPage },
    {
      path: "/executions/:namespace/:flowId/:id/:tab?",
      name: "execution",
      component: () => import("./pages/ExecutionPage.vue"),
      props: true,
    },
    { path: "/workers", name: "workers", component: () => import("./pages/WorkersPage.vue") },
    { path: "/admin/triggers", name: "triggers", component: () => import("./pages/TriggersPage.vue") },
    { path: "/logs", name: "logs", component: () => import("./pages/LogsPage.vue") },
    { path: "/:rest(.*)*", name: "not-found", component: () => import("./pages/NotFoundPage.vue") },
  ],
});
