#!/bin/sh
echo "coverage reports are unavailable: the offline Bazel build has no remote_coverage_tools" >&2
exit 1
