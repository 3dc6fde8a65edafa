"""Deployable exports: MindIR (loaded back and compared), AIR on Ascend."""
