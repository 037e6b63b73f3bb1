"""The streams of an offline analysis (``exo analyze``) as an MCAP log with ROS 2 schemas.

Same format as a run's telemetry (rosbag2 folder, CDR), so Foxglove/PlotJuggler show a
clinic's trial like a live session. Log time = trial time (s from the start of the trial).

Topics: ``/analysis/joint_angles`` (sensor_msgs/JointState: position rad or m, effort = net joint
moment N*m), ``/analysis/grf/left`` and ``/analysis/grf/right`` (geometry_msgs/WrenchStamped, force N
and free moment N*m, z-up world) with ``/analysis/cop/left|right`` (geometry_msgs/PointStamped, m),
``/analysis/knee_moments`` (sensor_msgs/JointState, effort = [KAM, KEM] in %BW*ht, names say so).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.telemetry import schema
from runtime.telemetry.log import TelemetryLog


def write_analysis_mcap(result, out_dir: str | Path) -> Path:
    """Write ``result`` (``models.trial_analysis.TrialAnalysis``) to ``out_dir`` (a new rosbag2 folder)."""
    out = Path(out_dir)
    log = TelemetryLog(out, chunk_period_s=0.5, queue_capacity=max(1000, 8 * result.time_s.size))
    coords = list(result.coordinate_names)
    moment_index = {n: i for i, n in enumerate(result.moment_names)}
    side = result.params.side

    def header(t_ns: int, frame: str):
        return schema.make("std_msgs/msg/Header", stamp=t_ns, frame_id=frame)

    def joints(i):
        t = int(round(result.time_s[i] * 1e9))
        eff = [float(result.moments_nm[i, moment_index[c]]) if c in moment_index else float("nan") for c in coords]
        return schema.make("sensor_msgs/msg/JointState", header=header(t, "model"), name=coords,
                           position=result.coordinates[i], velocity=[], effort=eff)

    def wrench(args):
        i, s = args
        t = int(round(result.time_s[i] * 1e9))
        f = np.nan_to_num(result.foot_force_n[s][i])
        m = np.nan_to_num(result.foot_free_moment_nm[s][i])
        return schema.make("geometry_msgs/msg/WrenchStamped", header=header(t, "world"),
                           wrench=schema.make("geometry_msgs/msg/Wrench",
                                              force=schema.make("geometry_msgs/msg/Vector3", x=f[0], y=f[1], z=f[2]),
                                              torque=schema.make("geometry_msgs/msg/Vector3", x=m[0], y=m[1], z=m[2])))

    def cop(args):
        i, s = args
        t = int(round(result.time_s[i] * 1e9))
        p = result.foot_cop_m[s][i]
        return schema.make("geometry_msgs/msg/PointStamped", header=header(t, "world"),
                           point=schema.make("geometry_msgs/msg/Point", x=p[0], y=p[1], z=p[2]))

    def knee(i):
        t = int(round(result.time_s[i] * 1e9))
        return schema.make("sensor_msgs/msg/JointState", header=header(t, f"tibia_{side[0]}"),
                           name=[f"knee_adduction_moment_{side}_pct_bw_ht", f"knee_extension_moment_{side}_pct_bw_ht"],
                           position=[], velocity=[],
                           effort=[float(result.kam_pct_bw_ht[i]), float(result.kem_pct_bw_ht[i])])

    log.register("/analysis/joint_angles", "sensor_msgs/msg/JointState", joints)
    log.register("/analysis/knee_moments", "sensor_msgs/msg/JointState", knee)
    for s in ("left", "right"):
        log.register(f"/analysis/grf/{s}", "geometry_msgs/msg/WrenchStamped", wrench)
        log.register(f"/analysis/cop/{s}", "geometry_msgs/msg/PointStamped", cop)
    with log.open():
        for i in range(result.time_s.size):
            t = int(round(result.time_s[i] * 1e9))
            log.write("/analysis/joint_angles", t, i)
            log.write("/analysis/knee_moments", t, i)
            for s in ("left", "right"):
                log.write(f"/analysis/grf/{s}", t, (i, s))
                if np.isfinite(result.foot_cop_m[s][i]).all():
                    log.write(f"/analysis/cop/{s}", t, (i, s))
    if log.dropped or log.conversion_errors:
        raise RuntimeError(f"analysis log {out}: {log.dropped} dropped, {log.conversion_errors} conversion errors")
    return out
