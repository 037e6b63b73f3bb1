"""The node graph's topics over Cyclone DDS without rclpy (devices without ROS 2).

ROS 2 maps a topic ``/a/b`` to the DDS topic ``rt/a/b`` and a type ``pkg/msg/Name`` to
``pkg::msg::dds_::Name_``; samples are XCDR1 (plain CDR, little-endian). :mod:`runtime.dds.types`
declares the standard messages the nodes use with exactly those names and layouts, so a ROS 2
subscriber (any RMW) and ``rosbags``' CDR reader accept what :mod:`runtime.dds.transport` writes.
``cyclonedds`` bundles its C library; nothing here imports rclpy. Every participant is created
on a domain configured for the loopback interface only, after
:func:`firmware_bridge.netns.require_isolated_dds`.
"""
