"""The planner: which combination of techniques serves a model, device and workload best."""
