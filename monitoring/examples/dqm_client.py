#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A remote consumer of na64daq serve's data-quality stream (--dqm-pub).

Prints one line per message: spill summaries with their verdicts, sampled
events and alarms. Needs Debian's python3-zmq and python3-protobuf, and the
module the build generates from daq/proto/dqm.proto:

    PYTHONPATH=build/ci/python monitoring/examples/dqm_client.py tcp://127.0.0.1:5557
    ... --topic spill --count 3      # the next three spill summaries, then exit
"""

import argparse
import sys

import zmq

try:
    import dqm_pb2
except ImportError:
    sys.exit("dqm_client: no dqm_pb2 module; run with PYTHONPATH=<build dir>/python (generated from daq/proto/dqm.proto)")

LINES = ("invisible", "beam", "random")


def per_line(counts):
    return " ".join(f"{name} {n}" for name, n in zip(LINES, counts))


def show_spill(body):
    s = dqm_pb2.Spill.FromString(body)
    line = (f"spill run {s.run} spill {s.spill}: particles {s.particles} built {s.built} "
            f"incomplete {s.incomplete} | accepted {per_line(s.accepted)} | written {s.written} "
            f"{s.bytes / 1e6:.2f} MB | dead time {100 * s.dead_time:.1f} % | verdict {s.verdict}")
    for reason in s.reasons:
        line += f"\n    {reason}"
    return line


def show_event(body):
    e = dqm_pb2.Event.FromString(body)
    ecal = sum(c.energy_gev for c in e.cells if c.detector in ("ECAL0", "ECAL1"))
    hcal = sum(c.energy_gev for c in e.cells if c.detector.startswith("HCAL"))
    return (f"event run {e.run} spill {e.spill} event {e.event} particle {e.particle} "
            f"trigger mask {e.trigger_mask:#x}: ECAL {ecal:.1f} GeV, HCAL {hcal:.2f} GeV, "
            f"{len(e.cells)} cells, {len(e.date_event)} bytes of DATE event")


def show_alarm(body):
    a = dqm_pb2.Alarm.FromString(body)
    state = f"acknowledged by {a.acknowledged_by}" if a.acknowledged else "open"
    return f"alarm {a.id} ({a.level}, {state}): {a.text}"


SHOW = {"spill": show_spill, "event": show_event, "alarm": show_alarm}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", help="the daemon's --dqm-pub endpoint, e.g. tcp://127.0.0.1:5557")
    parser.add_argument("--topic", choices=sorted(SHOW), action="append",
                        help="receive only this topic (repeatable; default all)")
    parser.add_argument("--count", type=int, default=0, help="exit after this many messages (default: never)")
    parser.add_argument("--timeout", type=float, default=0, help="exit with status 1 after this many seconds without a message")
    args = parser.parse_args()

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in args.topic or [""]:
        sub.setsockopt_string(zmq.SUBSCRIBE, topic)
    sub.connect(args.endpoint)
    if args.timeout > 0:
        sub.setsockopt(zmq.RCVTIMEO, int(args.timeout * 1000))

    received = 0
    try:
        while args.count == 0 or received < args.count:
            try:
                topic, body = sub.recv_multipart()
            except zmq.Again:
                print(f"dqm_client: nothing received for {args.timeout} s", file=sys.stderr)
                return 1
            show = SHOW.get(topic.decode("ascii", "replace"))
            if show is None:
                continue  # a topic of a later version
            print(show(body), flush=True)
            received += 1
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
