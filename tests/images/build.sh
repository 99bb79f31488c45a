#!/bin/sh
# build.sh: placeholder until the image-store work lands the real builder.
set -eu
echo "tests/images/build.sh: no images yet"
