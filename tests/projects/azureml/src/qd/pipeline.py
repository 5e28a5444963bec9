"""Stand-in for the training pipeline the Azure ML example uploads with its jobs."""

import os
import sys

print("rank", os.environ.get("OMPI_COMM_WORLD_RANK", "0"), "args", sys.argv[1:])
