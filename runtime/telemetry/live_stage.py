"""The Foxglove live view as a pipeline stage: each new estimate and each cycle's torque request, streamed.

Publishes on the channels of :mod:`runtime.telemetry.live_view` (never blocks the loop: a bounded queue drops the
oldest and counts it) and feeds :class:`runtime.report.gait_retraining.GaitRetraining` with the knee adduction
moment and the vertical GRF of ``side`` so the walker sees each stride's peak KAM against their baseline.
"""
from __future__ import annotations

from typing import Any


class LiveViewStage:
    name = "live_view"

    def __init__(self, port: int, joint_names: list[str], side: str = "right", host: str = "127.0.0.1") -> None:
        from runtime.report.gait_retraining import GaitRetraining
        from runtime.telemetry.live_view import LiveView

        self.side = side[0]
        self._torque_keys = [f"requested_{n}" for n in joint_names]
        self.live = LiveView(host=host, port=port).start()
        self.gait = GaitRetraining(live=self.live)
        self._foot = 0 if self.side == "r" else 1          # runtime.estimation.chain FEET order: right, left

    def step(self, frame: Any) -> None:
        t = frame.capture_ns
        live = self.live
        live.publish("/exo/live/torque", t, {k: float(v) for k, v in zip(self._torque_keys, frame.assistance_nm)})
        est = frame.estimate
        if not frame.new_estimate or est is None:
            return
        live.publish_named("/exo/live/joint_angles", t, list(est.coordinate_names), est.coordinates_rad.tolist())
        live.publish("/exo/live/knee_moments", t, {f"kam_{self.side}": est.kam_pct_bw_ht,
                                                   f"kem_{self.side}": est.kem_pct_bw_ht})
        if est.kcf_n.size:
            live.publish("/exo/live/kcf", t, {"medial": float(est.kcf_n[0]), "lateral": float(est.kcf_n[1]),
                                              "total": float(est.kcf_n[2])})
        if est.valid:
            self.gait.update(t, float(est.kam_pct_bw_ht), float(est.grf_n[self._foot, 2]))

    def close(self) -> dict[str, Any]:
        counters = {"sent": self.live.sent, "dropped_oldest": getattr(self.live, "dropped_oldest", None),
                    "strides": len(getattr(self.gait, "strides", []) or [])}
        self.live.close()
        return counters
