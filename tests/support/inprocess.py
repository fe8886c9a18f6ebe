"""ComfyUI's prompt executor in-process, driven as main.py's prompt worker drives it."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path


class _ServerStub:
    """What PromptExecutor needs of PromptServer when no client listens."""
    client_id = None
    last_node_id = None
    last_prompt_id = None

    def send_sync(self, *args, **kwargs):
        pass


class InProcessHost:
    def __init__(self):
        import execution
        import folder_paths
        self.execution, self.folder_paths = execution, folder_paths
        # "ram_inactive" is read by hosts from 0.23 on; older ones ignore it.
        self.executor = execution.PromptExecutor(_ServerStub(), cache_type=execution.CacheType.CLASSIC,
                                                 cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})

    def run(self, api: dict) -> list[Path]:
        """Validate and execute like main.py's worker; returns the saved (not previewed) image paths."""
        prompt_id = str(uuid.uuid4())
        valid = asyncio.run(self.execution.validate_prompt(prompt_id, api, None))
        assert valid[0], f"invalid prompt: {valid[1]} {valid[3]}"
        self.executor.execute(api, prompt_id, {}, valid[2])
        assert self.executor.success, self.executor.status_messages[-1]
        out = Path(self.folder_paths.get_output_directory())
        return [out / img.get("subfolder", "") / img["filename"]
                for node in self.executor.history_result["outputs"].values()
                for img in node.get("images", []) if img.get("type", "output") == "output"]
