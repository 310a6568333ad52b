"""The library behind the scripts: training loop, checkpoints, evaluation, inference, logs, threads.

Importing the package imports nothing else: scripts set ``OMP_NUM_THREADS`` through
:mod:`senet.threads` before anything loads MXNet, and a parameter server unpickles
:mod:`senet.lr_schedule` while the trainer is still importing MXNet.
"""
