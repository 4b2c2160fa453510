"""Tests for nlvae.metrics: hand-computed cases, invariances, chance levels and perfect codes.

The ground truth here is a tiny synthetic sampler (observations = factor values), never the sprite
renderer, so every metric runs in well under a second at the "quick" sample sizes.
"""

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import mutual_info_score

from nlvae import metrics

FACTOR_SIZES = (3, 4, 5, 6)
CHANCE_ACCURACY = float(np.mean([1.0 / k for k in FACTOR_SIZES]))  # uniform factors: 0.2375


class SyntheticGroundTruth:
  """Independent uniform factors on grids of `sizes`; observation = factor values as float32."""

  def __init__(self, sizes=FACTOR_SIZES):
    self.factors_num_values = tuple(sizes)
    self.num_factors = len(sizes)

  def sample_factors(self, num, random_state):
    return np.stack([random_state.integers(k, size=num) for k in self.factors_num_values], axis=1)

  def sample_observations_from_factors(self, factors, random_state):
    del random_state
    return np.asarray(factors, dtype=np.float32)


def standardise(factors, sizes=FACTOR_SIZES):
  """Maps factor k in 0..K-1 to zero mean, unit variance under the uniform distribution."""
  sizes = np.asarray(sizes)
  return (np.asarray(factors, np.float64) - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)


def rotate_first_two(codes):
  """Rotates latents 0 and 1 by 45 degrees: each then mixes factors 0 and 1 equally."""
  codes = np.array(codes, dtype=np.float64)
  a, b = codes[:, 0].copy(), codes[:, 1].copy()
  codes[:, 0], codes[:, 1] = (a + b) / math.sqrt(2), (a - b) / math.sqrt(2)
  return codes


def identity_representation(observations):
  return np.asarray(observations, np.float64)


def noise_representation(seed, num_latents=4):
  rng = np.random.default_rng(seed)
  return lambda observations: rng.normal(size=(len(observations), num_latents))


@pytest.fixture(scope="module")
def samples():
  """Factors int [N, 4] (train 4000, test 2000) of the synthetic ground truth."""
  gt, rng = SyntheticGroundTruth(), np.random.default_rng(0)
  return gt.sample_factors(4000, rng), gt.sample_factors(2000, rng)


# ------------------------------------------------------------------------------------------------
# Hand-computed cases.

# Mutually orthogonal, zero-mean, equal-norm columns: corr(sum_k a_k f_k, f_j) = a_j / ||a||.
HADAMARD = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)


def test_mcc_hand_computed_3x3():
  mixing = np.array([[-4.0, 3.0, 0.0],   # latent 0: corr (-0.8, 0.6, 0)
                     [3.0, 0.0, 4.0],    # latent 1: corr (0.6, 0, 0.8)
                     [0.0, 0.0, 2.0]])   # latent 2: corr (0, 0, 1)
  codes = HADAMARD @ mixing.T
  result = metrics.mcc(codes, HADAMARD, correlation="pearson")
  expected_corr = mixing / np.linalg.norm(mixing, axis=1, keepdims=True)
  np.testing.assert_allclose(result["corr"], expected_corr, atol=1e-12)
  # Assignments and their |corr| sums: f->(c1, c0, c2) gives 0.6 + 0.6 + 1 = 2.2, the maximum
  # (greedy largest-first would take c2-f2 (1.0), c0-f0 (0.8), c1-f1 (0.0): 1.8).
  np.testing.assert_array_equal(result["matching"], [1, 0, 2])
  assert result["score"] == pytest.approx(2.2 / 3, abs=1e-12)
  np.testing.assert_allclose(result["per_factor"], [0.6, 0.6, 1.0], atol=1e-12)


def test_mcc_padding_path_more_latents_than_factors():
  rng = np.random.default_rng(1)
  factors = rng.normal(size=(3000, 2))
  codes = np.stack([rng.normal(size=3000), 5 * factors[:, 1], -factors[:, 0]**3], axis=1)
  for seed in (0, 1):
    result = metrics.mcc(codes, factors, seed=seed)
    assert result["score"] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(result["matching"], [2, 1])
    assert result["corr"].shape == (3, 2)
  # A weaker latent is matched to a real factor only through an optimal (injective) assignment:
  # the score is the best mean |corr| over injective maps, up to the padding's O(N^-1/2) noise.
  codes = np.stack([factors[:, 0] + factors[:, 1], factors[:, 0], rng.normal(size=3000)], axis=1)
  result = metrics.mcc(codes, factors)
  abs_corr = np.abs(result["corr"])
  best = max(np.mean(abs_corr[list(p), [0, 1]]) for p in itertools.permutations(range(3), 2))
  assert best - 0.05 <= result["score"] <= best + 1e-12
  assert len(set(result["matching"])) == 2


def test_mcc_fewer_latents_than_factors_counts_unmatched_as_zero():
  rng = np.random.default_rng(2)
  factors = rng.normal(size=(2000, 3))
  codes = np.stack([factors[:, 2], -np.exp(factors[:, 0])], axis=1)
  result = metrics.mcc(codes, factors)
  assert result["score"] == pytest.approx(2.0 / 3.0, abs=1e-12)
  np.testing.assert_array_equal(result["matching"], [1, -1, 0])
  np.testing.assert_allclose(result["per_factor"], [1.0, 0.0, 1.0], atol=1e-12)


def test_mutual_information_of_tiny_tables_matches_closed_form():
  x, y = [0, 0, 0, 1], [0, 0, 1, 1]
  # p(0,0) = 1/2, p(0,1) = 1/4, p(1,1) = 1/4; p(x) = (3/4, 1/4), p(y) = (1/2, 1/2).
  expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
  codes = np.array([x, [0, 1, 0, 1], y], dtype=np.int64).T
  info = metrics.mutual_info_matrix(codes, np.array([y]).T)
  np.testing.assert_allclose(info[:, 0], [expected, 0.0, math.log(2)], atol=1e-15)
  # Independent check against scikit-learn's estimator on random labels.
  rng = np.random.default_rng(3)
  a, b = rng.integers(7, size=(500, 2)), rng.integers(5, size=(500, 3))
  info = metrics.mutual_info_matrix(a, b)
  for i, j in itertools.product(range(2), range(3)):
    assert info[i, j] == pytest.approx(mutual_info_score(b[:, j], a[:, i]), abs=1e-12)


def test_discretize_is_disentanglement_lib_histogram_partition():
  np.testing.assert_array_equal(
      metrics.discretize(np.array([[0.0], [0.5], [1.0], [2.0]]), num_bins=2)[:, 0], [0, 0, 1, 1])
  x = np.random.default_rng(4).standard_t(df=3, size=(1000, 3))
  binned = metrics.discretize(x, num_bins=20)
  for d in range(3):
    reference = np.digitize(x[:, d], np.histogram(x[:, d], 20)[1][:-1])  # labels 1..20
    np.testing.assert_array_equal(binned[:, d], reference - 1)
  assert binned.min() == 0 and binned.max() == 19
  assert len(np.unique(metrics.discretize(np.ones((5, 1))))) == 1  # constant: a single bin


def test_mig_hand_computed_case():
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # c0 = f0, c1 = f0 AND f1
  m = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)  # I(c1; f0) = I(c1; f1)
  result = metrics.mig(codes, factors)
  np.testing.assert_allclose(result["mutual_info"], [[math.log(2), 0.0], [m, m]], atol=1e-15)
  np.testing.assert_allclose(result["factor_entropy"], [math.log(2)] * 2, atol=1e-15)
  np.testing.assert_allclose(result["per_factor"],
                             [(math.log(2) - m) / math.log(2), m / math.log(2)], atol=1e-15)
  assert result["score"] == pytest.approx(0.5, abs=1e-15)
  # One latent: the gap is taken against zero information.
  assert metrics.mig(codes[:, :1], factors)["per_factor"] == pytest.approx([1.0, 0.0], abs=1e-15)


def _binary_entropy_bits(p):
  return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_dci_from_importance_hand_computed():
  result = metrics.dci_from_importance(np.array([[0.6, 0.2], [0.0, 0.2]]))
  # Latent 0 splits 3:1 over the factors, latent 1 is pure; weights 0.8 and 0.2.
  expected_d = 0.8 * (1 - _binary_entropy_bits(0.75)) + 0.2 * 1.0
  # Factor 0 lives in latent 0 only (weight 0.6), factor 1 is split 1:1 (weight 0.4).
  expected_c = 0.6 * 1.0 + 0.4 * 0.0
  assert result["disentanglement"] == pytest.approx(expected_d, abs=1e-12)
  assert result["completeness"] == pytest.approx(expected_c, abs=1e-12)
  np.testing.assert_allclose(result["disentanglement_per_code"],
                             [1 - _binary_entropy_bits(0.75), 1.0], atol=1e-12)
  assert metrics.dci_from_importance(np.eye(3))["disentanglement"] == pytest.approx(1.0)
  uniform = metrics.dci_from_importance(np.ones((3, 3)))
  assert uniform["disentanglement"] == pytest.approx(0.0, abs=1e-12)
  assert uniform["completeness"] == pytest.approx(0.0, abs=1e-12)
  zero = metrics.dci_from_importance(np.zeros((2, 3)))
  assert zero["disentanglement"] == 0.0 and zero["completeness"] == 0.0


def test_dci_from_importance_agrees_with_disentanglement_lib_formula():
  importance = np.random.default_rng(5).dirichlet(np.ones(7), size=3).T  # [L=7, F=3]
  importance[2] = 0.0  # a dead latent
  # disentanglement_lib: 1 - entropy(R + 1e-11, base), weighted by normalised row / column sums.
  d_ref = 1 - scipy.stats.entropy(importance.T + 1e-11, base=3)
  c_ref = 1 - scipy.stats.entropy(importance + 1e-11, base=7)
  d_ref = np.sum(d_ref * importance.sum(1) / importance.sum())
  c_ref = np.sum(c_ref * importance.sum(0) / importance.sum())
  result = metrics.dci_from_importance(importance)
  assert result["disentanglement"] == pytest.approx(d_ref, abs=1e-8)
  assert result["completeness"] == pytest.approx(c_ref, abs=1e-8)


def test_modularity_from_mutual_info_hand_computed():
  result = metrics.modularity_from_mutual_info(
      np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]))
  # Latent 1: (0.25 + 0.25 - 0.25) / (0.25 * 2) = 0.5 deviation; a dead latent scores 0.
  np.testing.assert_allclose(result["per_code"], [1.0, 0.5, 0.0], atol=1e-15)
  assert result["modularity"] == pytest.approx(0.5, abs=1e-15)


def test_sap_continuous_hand_computed():
  factors = HADAMARD[:, :2]
  codes = np.stack([3 * factors[:, 0] + 4 * factors[:, 1], factors[:, 0]], axis=1)
  result = metrics.sap(codes, factors, codes, factors, continuous_factors=True)
  np.testing.assert_allclose(result["score_matrix"], [[0.36, 0.64], [1.0, 0.0]], atol=1e-12)
  # Factor 0: 1 - 0.36; factor 1: 0.64 - 0.
  assert result["score"] == pytest.approx(0.64, abs=1e-12)


def test_sap_thresholds_fix_linear_svc_defect_on_many_valued_factor():
  rng = np.random.default_rng(6)
  factor_train, factor_test = rng.integers(32, size=(4000, 1)), rng.integers(32, size=(2000, 1))
  def codes(f):
    return np.concatenate([f.astype(np.float64), rng.normal(size=f.shape)], axis=1)
  fixed = metrics.sap_score_matrix(codes(factor_train), factor_train, codes(factor_test),
                                   factor_test)
  reference = metrics.sap_score_matrix(codes(factor_train), factor_train, codes(factor_test),
                                       factor_test, discrete_classifier="linear_svc")
  assert fixed[0, 0] == pytest.approx(1.0)        # the latent IS the factor
  assert abs(fixed[1, 0]) < 0.05                   # noise latent: chance-adjusted ~ 0
  assert reference[0, 0] < 0.3                     # disentanglement_lib's LinearSVC: ~0.09


# ------------------------------------------------------------------------------------------------
# Perfect codes, chance level and mixing, through the full pipeline.


def test_codes_equal_to_factors_score_at_maximum_on_every_metric():
  scores = metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                               np.random.default_rng(0), scale="quick")
  assert tuple(scores) == metrics.COMPUTE_ALL_KEYS
  assert all(isinstance(value, float) for value in scores.values())
  thresholds = {  # metric: lower bound (all have maximum 1)
      "mcc": 0.99, "mig": 0.95, "dci_disentanglement": 0.95, "dci_completeness": 0.95,
      "dci_informativeness_train_accuracy": 0.99, "dci_informativeness_test_accuracy": 0.99,
      "sap": 0.9, "modularity": 0.95, "explicitness_train": 0.95, "explicitness_test": 0.95,
      "beta_vae_train_accuracy": 0.99, "beta_vae_eval_accuracy": 0.99,
      "factor_vae_train_accuracy": 0.99, "factor_vae_eval_accuracy": 0.99}
  for key, bound in thresholds.items():
    assert bound < scores[key] <= 1.0 + 1e-12, (key, scores[key])
  assert scores["factor_vae_num_active_dims"] == 4.0


def test_compute_all_subset_matches_the_full_call():
  # A subset draws pools of the same sizes here (train: max(MCC, MIG, modularity); test: SAP and
  # modularity), then the same seed: its scores are those of the full call, in COMPUTE_ALL_KEYS
  # order, and nothing else is computed.
  full = metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                             np.random.default_rng(3), scale="quick")
  names = ("sap", "modularity", "mig", "mcc")
  subset = metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                               np.random.default_rng(3), scale="quick", metrics=names)
  keys = [key for key in metrics.COMPUTE_ALL_KEYS
          if any(key in metrics.METRIC_KEYS[name] for name in names)]
  assert list(subset) == keys
  assert subset == {key: full[key] for key in keys}
  only_beta_vae = metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                                      np.random.default_rng(3), scale="quick",
                                      metrics=["beta_vae"])
  assert tuple(only_beta_vae) == metrics.METRIC_KEYS["beta_vae"]
  assert only_beta_vae["beta_vae_eval_accuracy"] > 0.99
  assert metrics.METRIC_NAMES == tuple(metrics.METRIC_KEYS)
  assert sum(map(len, metrics.METRIC_KEYS.values())) == len(metrics.COMPUTE_ALL_KEYS)


def test_correlation_matrix_is_pearson_and_zero_for_constant_columns():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
  b[:, 1] = 2 * a[:, 0] + 1
  expected = np.corrcoef(a.T, b.T)[:3, 3:]
  np.testing.assert_allclose(metrics.correlation_matrix(a, b), expected, atol=1e-12)
  assert metrics.correlation_matrix(a, b)[0, 1] == pytest.approx(1.0)
  constant = np.concatenate([a[:, :1], np.ones((50, 1))], axis=1)
  np.testing.assert_array_equal(metrics.correlation_matrix(constant, a)[1], 0.0)


def test_random_codes_score_at_chance():
  scores = metrics.compute_all(SyntheticGroundTruth(), noise_representation(7),
                               np.random.default_rng(1), scale="quick")
  # Chance levels: 0 for correlation / information / gap / importance-concentration scores,
  # 0.5 for ROC-AUC, 1/F = 0.25 for BetaVAE/FactorVAE, mean_j 1/K_j for the DCI accuracy.
  assert scores["mcc"] < 0.1            # 16 |corr| of N=1000 noise, sd 0.03
  assert scores["mig"] < 0.05
  assert scores["dci_disentanglement"] < 0.2
  assert abs(scores["dci_informativeness_test_accuracy"] - CHANCE_ACCURACY) < 0.05
  assert scores["sap"] < 0.05
  assert abs(scores["explicitness_test"] - 0.5) < 0.05
  assert abs(scores["beta_vae_eval_accuracy"] - 0.25) < 0.07     # 500 points: sd 0.019
  assert abs(scores["factor_vae_eval_accuracy"] - 0.25) < 0.07


def test_modularity_of_random_codes_matches_chi_square_chance_level():
  """Plug-in MI of independent variables is ~ chi2((B-1)(K-1)) / (2N), so uneven factor sizes make
  random codes look partly modular; the metric must agree with that analytic chance level."""
  rng = np.random.default_rng(8)
  factors = SyntheticGroundTruth().sample_factors(10_000, rng)
  codes = rng.uniform(size=(10_000, 100))  # uniform: all 20 histogram bins equally filled
  info = metrics.mutual_info_matrix(metrics.discretize(codes, 20), factors)
  observed = metrics.modularity_from_mutual_info(info)["modularity"]
  dof = 19 * (np.array(FACTOR_SIZES) - 1)
  squared = rng.chisquare(dof, size=(200_000, 4))**2
  top = squared.max(axis=1)
  expected = np.mean(1 - (squared.sum(axis=1) - top) / (top * 3))
  assert 0.5 < expected < 0.8  # well above 0
  assert observed == pytest.approx(expected, abs=0.05)  # 100 latents: sd about 0.015


def test_mixing_two_factors_lowers_mig_dci_and_mcc(samples):
  factors_train, factors_test = samples
  rng = np.random.default_rng(9)
  def clean(f):
    return standardise(f) + 0.05 * rng.normal(size=f.shape)
  clean_train, clean_test = clean(factors_train), clean(factors_test)
  mixed_train, mixed_test = rotate_first_two(clean_train), rotate_first_two(clean_test)
  mig_clean = metrics.mig(clean_train, factors_train)["score"]
  mig_mixed = metrics.mig(mixed_train, factors_train)["score"]
  assert mig_mixed < mig_clean - 0.3
  n_dci = 1000
  dci_clean = metrics.dci(clean_train[:n_dci], factors_train[:n_dci], clean_test[:500],
                          factors_test[:500])
  dci_mixed = metrics.dci(mixed_train[:n_dci], factors_train[:n_dci], mixed_test[:500],
                          factors_test[:500])
  assert dci_mixed["disentanglement"] < dci_clean["disentanglement"] - 0.1
  mcc_clean = metrics.mcc(clean_train, factors_train, correlation="pearson")["score"]
  mcc_mixed = metrics.mcc(mixed_train, factors_train, correlation="pearson")["score"]
  assert mcc_clean > 0.99
  # Population value: two factors at corr 1/sqrt(2) (noise 0.05 shrinks all by ~0.1%).
  assert mcc_mixed == pytest.approx((2 + 2 / math.sqrt(2)) / 4, abs=0.02)


# ------------------------------------------------------------------------------------------------
# Invariances.


def _invariance_data():
  rng = np.random.default_rng(10)
  factors = SyntheticGroundTruth().sample_factors(2000, rng)
  z = standardise(factors)
  codes = np.stack([z[:, 0] + 0.5 * z[:, 1], z[:, 1], z[:, 2], z[:, 3] - 0.3 * z[:, 2],
                    np.zeros(2000)], axis=1) + 0.3 * rng.normal(size=(2000, 5))
  return codes, factors  # 5 latents, 4 factors: exercises MCC's padding


INVARIANCE_CODES, INVARIANCE_FACTORS = _invariance_data()
MONOTONE_MAPS = (lambda x: x, lambda x: x**3, np.arctan, lambda x: np.exp(x / 2))

latent_transforms = st.tuples(
    st.permutations(range(5)),
    st.lists(st.floats(0.01, 100.0), min_size=5, max_size=5),
    st.lists(st.sampled_from([-1.0, 1.0]), min_size=5, max_size=5),
    st.lists(st.floats(-10.0, 10.0), min_size=5, max_size=5),
    st.lists(st.integers(0, len(MONOTONE_MAPS) - 1), min_size=5, max_size=5))


def _transform(codes, permutation, scales, signs, offsets, maps=None):
  codes = codes.copy()
  if maps is not None:
    codes = np.stack([MONOTONE_MAPS[m](codes[:, i]) for i, m in enumerate(maps)], axis=1)
  codes = codes * np.array(scales) * np.array(signs) + np.array(offsets)
  return codes[:, list(permutation)]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(latent_transforms)
def test_mcc_spearman_invariant_to_permutation_and_monotone_maps(transform):
  permutation, scales, signs, offsets, maps = transform
  base = metrics.mcc(INVARIANCE_CODES, INVARIANCE_FACTORS)
  moved = metrics.mcc(_transform(INVARIANCE_CODES, permutation, scales, signs, offsets, maps),
                      INVARIANCE_FACTORS)
  assert moved["score"] == pytest.approx(base["score"], abs=1e-9)
  np.testing.assert_array_equal(np.array(permutation)[moved["matching"]], base["matching"])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(latent_transforms)
def test_mcc_pearson_and_mig_invariant_to_permutation_and_affine_maps(transform):
  permutation, scales, signs, offsets, _ = transform
  moved_codes = _transform(INVARIANCE_CODES, permutation, scales, signs, offsets)
  for correlation in ("pearson", "spearman"):
    base = metrics.mcc(INVARIANCE_CODES, INVARIANCE_FACTORS, correlation=correlation)["score"]
    moved = metrics.mcc(moved_codes, INVARIANCE_FACTORS, correlation=correlation)["score"]
    assert moved == pytest.approx(base, abs=1e-9)
  base = metrics.mig(INVARIANCE_CODES, INVARIANCE_FACTORS)
  moved = metrics.mig(moved_codes, INVARIANCE_FACTORS)
  assert moved["score"] == pytest.approx(base["score"], abs=1e-9)
  np.testing.assert_allclose(moved["per_factor"], base["per_factor"], atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Protocol details, determinism, robustness and errors.


def test_synthetic_ground_truth_satisfies_protocol():
  assert isinstance(SyntheticGroundTruth(), metrics.GroundTruthData)


def test_factor_vae_votes_for_the_right_latent_when_a_dead_latent_is_pruned():
  # A constant latent first: disentanglement_lib would record factor k's votes at latent k instead
  # of k + 1 and report num_active_dims = 5.
  def representation(observations):
    return np.concatenate([np.zeros((len(observations), 1)), observations], axis=1)
  kwargs = dict(batch_size=16, num_train=200, num_eval=100, num_variance_estimate=500)
  result = metrics.factor_vae_score(SyntheticGroundTruth(), representation,
                                    np.random.default_rng(11), **kwargs)
  assert (result["train_accuracy"], result["eval_accuracy"]) == (1.0, 1.0)
  assert result["num_active_dims"] == 4
  votes = result["votes"]
  assert votes.shape == (4, 5) and votes.sum() == 200
  np.testing.assert_array_equal(votes[:, 0], 0)  # the pruned latent never gets a vote
  np.testing.assert_array_equal(votes[:, 1:], np.diag(votes.sum(axis=1)))  # factor k -> latent k+1
  again = metrics.factor_vae_score(SyntheticGroundTruth(), representation,
                                   np.random.default_rng(11), **kwargs)
  assert again["eval_accuracy"] == result["eval_accuracy"]
  np.testing.assert_array_equal(again["votes"], votes)
  silent = metrics.factor_vae_score(SyntheticGroundTruth(), lambda o: np.zeros((len(o), 3)),
                                    np.random.default_rng(11), **kwargs)
  assert (silent["train_accuracy"], silent["eval_accuracy"], silent["num_active_dims"]) == (0, 0, 0)


def test_beta_vae_score_is_deterministic_and_batches_representation_calls():
  calls = []
  def representation(observations):
    calls.append(len(observations))
    return rotate_first_two(standardise(observations))
  kwargs = dict(batch_size=8, num_train=300, num_eval=100, observations_per_call=64)
  first = metrics.beta_vae_score(SyntheticGroundTruth(), representation,
                                 np.random.default_rng(12), **kwargs)
  assert max(calls) <= 64
  assert sum(calls) == 2 * 8 * (300 + 100)
  second = metrics.beta_vae_score(SyntheticGroundTruth(), representation,
                                  np.random.default_rng(12), **kwargs)
  assert first == second
  # Mixing factors 0 and 1 makes them hard to tell apart: well below 1, well above chance.
  assert 0.3 < first["eval_accuracy"] < 0.95


def test_explicitness_and_dci_tolerate_dead_latents_and_missing_test_classes(samples):
  factors_train, factors_test = samples
  factors_train, factors_test = factors_train[:600], factors_test[:300]
  factors_test = factors_test[factors_test[:, 3] != 5]  # class 5 of factor 3 absent from test
  def codes(f):
    return np.concatenate([standardise(f), np.ones((len(f), 1))], axis=1)
  result = metrics.modularity_explicitness(codes(factors_train), factors_train,
                                           codes(factors_test), factors_test)
  assert all(np.isfinite(result[k]) for k in ("modularity", "explicitness_train",
                                                "explicitness_test"))
  assert result["explicitness_test"] > 0.95
  # 4 informative latents with modularity ~1 plus a constant one scoring 0.
  assert result["modularity"] == pytest.approx(4 / 5, abs=0.02)
  scores = metrics.dci(codes(factors_train), factors_train, codes(factors_test), factors_test)
  np.testing.assert_allclose(scores["importance_matrix"][4], 0.0)
  assert scores["disentanglement"] > 0.9 and scores["informativeness_test_accuracy"] > 0.99


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.mcc(np.zeros(10), np.zeros((10, 1))), "2-D"),
    (lambda: metrics.mcc(np.ones((10, 2)), np.arange(8).reshape(4, 2)), "rows"),
    (lambda: metrics.mcc(np.ones((3, 2)), np.array([[0.0], [0.0], [0.0]])), "single value"),
    (lambda: metrics.mcc(np.ones((3, 2)), np.ones((3, 1)) * [[0], [1], [2]], "kendall"),
     "spearman"),
    (lambda: metrics.mig(np.ones((3, 2)), np.array([[0.5], [1.0], [0.0]])), "discretize"),
    (lambda: metrics.mig(np.full((3, 2), np.nan), np.array([[0], [1], [0]])), "NaN"),
    (lambda: metrics.discretize(np.ones((3, 2)), num_bins=1), "num_bins"),
    (lambda: metrics.dci_from_importance(-np.ones((2, 2))), "non-negative"),
    (lambda: metrics.sap(np.ones((3, 1)), np.array([[0], [1], [0]]), np.ones((3, 1)),
                         np.array([[0], [1], [0]])), "at least 2 latents"),
    (lambda: metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                                 np.random.default_rng(0), scale="tiny"), "scale"),
    (lambda: metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                                 np.random.default_rng(0), scale="quick", metrics=["mcc", "dci2"]),
     "dci2"),
    (lambda: metrics.compute_all(SyntheticGroundTruth(), identity_representation,
                                 np.random.default_rng(0), scale="quick", metrics=[]),
     "non-empty"),
    (lambda: metrics.beta_vae_score(SyntheticGroundTruth(), lambda o: np.ones(len(o)),
                                    np.random.default_rng(0), num_train=2, num_eval=2),
     "representation_fn"),
])
def test_bad_input_raises_clear_error(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_full_scale_mig_and_modularity_use_the_study_configs_sample_sizes():
  """disentanglement_lib's shipped study configs run MIG and modularity/explicitness on 10,000
  training points (and 5,000 test points), not the 100,000 of their functions' keyword defaults."""
  rows = []
  def representation(observations):
    rows.append(len(observations))
    return standardise(observations)
  result = metrics.compute_all(SyntheticGroundTruth(), representation, np.random.default_rng(0),
                               metrics=("mig", "modularity"))
  assert sum(rows) == 10_000 + 5_000
  assert result["modularity"] > 0.99 and result["explicitness_test"] > 0.99
