"""One run on several processes (data parallelism over the collocation points).

- :mod:`.comm` — who this process is (rank, world) and how it sums with the others:
  :class:`Single` (one process) or :class:`ProcessGroup` (``torch.distributed``, gloo on
  CPU, NCCL on CUDA);
- :mod:`.shards` — the points split into shards, and the objective whose loss terms are
  sums over every shard of every process.

Start a run on N processes with ``mscalepde solve FILE --nproc N`` or
``torchrun --nproc_per_node N -m mscalepde solve FILE`` (README, "One run on several
processes").
"""
