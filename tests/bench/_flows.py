"""The benchmark's flows, deployed through the API."""

from __future__ import annotations

NAMESPACE = "lanner.bench"

BENCHMARK01 = f"""\
id: benchmark01
namespace: {NAMESPACE}
inputs:
  - id: name
    type: STRING
    defaults: World
tasks:
  - id: output
    type: io.kestra.plugin.core.output.OutputValues
    values:
      message: "Hello {{{{ inputs.name }}}}"
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ outputs.output.values.message }}}}"
"""

SEQUENTIAL_TASKS = 40


def sequential_flow(count: int = SEQUENTIAL_TASKS) -> str:
    """``count`` sequential ``Return`` tasks."""
    tasks = "".join(
        f"""  - id: return{i:02d}
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ taskrun.id }}}}"
"""
        for i in range(count)
    )
    return f"id: sequential{count}\nnamespace: {NAMESPACE}\ntasks:\n{tasks}"
