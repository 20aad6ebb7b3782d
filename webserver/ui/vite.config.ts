import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import vue from "@vitejs/plugin-vue";

// Built into the Python package (webserver/static/ui), served by FastAPI under /ui/.
export default defineConfig({
  base: "/ui/",
  plugins: [vue()],
  build: {
    outDir: fileURLToPath(new URL("../static/ui", import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8080" } },
  test: { environment: "happy-dom", include: ["src/**/*.test.ts"] },
});
