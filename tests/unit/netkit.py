"""The emulator with its network modules (VPC, ECS security groups, ECI placing groups in
them) on 127.0.0.1, through the real SDK: emulatorkit's thread with networking() wired in."""
from __future__ import annotations

import asyncio
import threading

from operators.emulator.alibaba import server
from operators.emulator.alibaba.backends import MemoryBackend
from operators.emulator.alibaba.eci import EciService
from operators.emulator.alibaba.faults import FaultConfig, Faults
from operators.emulator.alibaba.networking import networking
from operators.emulator.alibaba.vpc import MemoryVpcs

from .emulatorkit import AK, SK, EmulatorThread


class NetworkEmulator(EmulatorThread):
    def __init__(self, *, settle: float = 0.05, faults: FaultConfig | None = None):  # noqa: super: not its wiring
        self.backend = MemoryBackend()
        self.eci = EciService(self.backend, schedule_delay=0.0, tick=0.02)
        self.vpc, self.ecs = networking(self.eci, self.backend, settle=settle)
        self.networks: MemoryVpcs = self.vpc.backend  # type: ignore[assignment]
        self.emulator = server.Emulator({AK: SK}, [self.eci, self.vpc, self.ecs], Faults(faults))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = self.submit(server.serve(self.emulator, "127.0.0.1", 0))
