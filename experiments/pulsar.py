"""Pulsar (rotating neutron star, Crab-like optical pulse profile): learn its rotation phase.

  python -m experiments.run --config=experiments/pulsar.py          # quick CPU default
  python -m experiments.run --config=experiments/pulsar.py:full     # paper-scale, for a GPU
Variants: see experiments/configs/physics.py. A single frame shows only the brightness, so the
encoder sees a window of 7 frames (about one period); the latent is (u_x, u_y, brightness) with
the phase as the unit vector u. The evaluation infers each clip's phase by smoothing through the
prior from the encoded brightness (nlvae.priors.pulsar_smoothed_phase) and also scores the
encoder's own u. The prior's noise on the brightness (0.3) is looser than on u (0.02), so
that a brightness that does not yet match the (still random) phase costs little KL early on.
"""
from experiments.configs.physics import physics_config

PERIOD = 0.0337  # s (the Crab); 7.28 frames at 216 frames/s, not commensurate


def get_config(arg: str = ""):
  import math
  return physics_config(
      arg, system="pulsar",
      data_options=dict(period_range=(PERIOD, PERIOD), profile="optical"),
      prior=dict(name="pulsar", params=dict(omega=2 * math.pi / PERIOD, profile="optical"),
                 noise_scale=(0.02, 0.02, 0.3)),
      interventions=dict(radio_1418MHz=dict(profile="1418MHz"), slower_spin=dict(period=0.045)),
      learnable=dict(omega=2 * math.pi / 0.03), context_frames=7,
      # A Gaussian likelihood (pixel_std 0.1): with Bernoulli cross-entropy on these dark frames
      # the blinking point source is worth too little to be reconstructed at all, even by a
      # plain autoencoder (beta 0). The posterior starts narrow (log-variance shift -6).
      model=dict(likelihood="gaussian", posterior_log_var_shift=-6.0))
