"""The SlowVAE network and training step in PyTorch, for this project's side-by-side benchmark.

Optional: needs the ``bench`` extra (``pip install -e ".[bench]"``, torch 2.13); nothing else in
nlvae imports it. ``experiments.benchmark --only=pytorch`` times ``TorchSlowVAEStep`` against
nlvae's jitted step (``experiments.bench_networks.make_train_step``) in the same rounds.

The layers are those of ``nlvae.networks.slowvae_encoder`` / ``slowvae_decoder`` (64x64x1, z = 10:
763,285 parameters), in PyTorch's NCHW layout:

  encoder  Conv2d(C, 32, 4, 2, 1), Conv2d(32, 32, 4, 2, 1), Conv2d(32, 64, 4, 2, 1),
           Conv2d(64, 64, 4, 2, 1), Conv2d(64, 256, 4) (the hidden layer over the 4x4 map),
           Linear(256, 2 z) -> mean, log-variance; ReLU between layers
  decoder  Linear(z, 256), ReLU, ConvTranspose2d(256, 64, 4) (1x1 -> 4x4),
           ConvTranspose2d(64, 64 / 32 / 32 / C, 4, 2, 1), ReLU between, logits out

and the loss of ``bench_networks.vae_loss``: Bernoulli reconstruction (BCE with logits, summed over
pixels) + KL(q || N(0, I)), averaged over images; optimizer Adam (lr 1e-4; PyTorch's and optax's
defaults otherwise agree: betas 0.9, 0.999, eps 1e-8). ``load_flax_params`` copies nlvae's
parameters into the torch module (kernels [kh, kw, in, out] -> [out, in, kh, kw]; transposed
convs: PyTorch's weight is nlvae's kernel flipped, ``kernel[::-1, ::-1].transpose(2, 3, 0, 1)``,
see nlvae/networks.py), so that both frameworks can be checked to compute the same loss.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SLOWVAE_NUM_PARAMS = 763_285  # nlvae.networks' SlowVAE at z = 10, 64x64x1 (README, tests)


class SlowVAE(nn.Module):
  """SlowVAE encoder + decoder: images [B, C, H, W] -> (mean [B, z], log_var [B, z]); decode(z)."""

  def __init__(self, latent_dim: int = 10, channels: int = 1, image_size: int = 64):
    super().__init__()
    if image_size % 16:
      raise ValueError(f'image_size must be a multiple of 16, got {image_size}')
    side = image_size // 16
    self.latent_dim = latent_dim
    self.encoder = nn.Sequential(
        nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 256, side), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(256, 2 * latent_dim))
    self.decoder = nn.Sequential(
        nn.Linear(latent_dim, 256), nn.ReLU(),
        nn.Unflatten(1, (256, 1, 1)),
        nn.ConvTranspose2d(256, 64, side), nn.ReLU(),
        nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, channels, 4, 2, 1))

  def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    moments = self.encoder(images)
    return moments[:, :self.latent_dim], moments[:, self.latent_dim:]

  def decode(self, latents: torch.Tensor) -> torch.Tensor:
    return self.decoder(latents)


def vae_loss(model: SlowVAE, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
  """Bernoulli reconstruction (summed over pixels) + KL(q || N(0, I)), averaged over images.

  images float32 [B, C, H, W] in {0, 1}; noise float32 [B, z]: the same as bench_networks.vae_loss.
  """
  mean, log_var = model.encode(images)
  latents = mean + torch.exp(0.5 * log_var) * noise
  logits = model.decode(latents)
  reconstruction = F.binary_cross_entropy_with_logits(logits, images, reduction='none').sum(
      dim=(1, 2, 3))
  kl = 0.5 * torch.sum(torch.exp(log_var) + mean**2 - 1 - log_var, dim=-1)
  return torch.mean(reconstruction + kl)


def num_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def load_flax_params(model: SlowVAE, params: dict) -> None:
  """Copies nlvae's SlowVAE parameters ({'encoder': ..., 'decoder': ...} of
  networks.slowvae_encoder / slowvae_decoder, either upsample method) into ``model``."""
  enc, dec = params['encoder']['params'], params['decoder']['params']
  convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
  linears = [m for m in model.encoder if isinstance(m, nn.Linear)]
  trunk = enc['trunk']

  def put(tensor, value):
    value = np.array(value, np.float32)  # a writable copy
    if tuple(tensor.shape) != value.shape:
      raise ValueError(f'shape {value.shape} does not fit {tuple(tensor.shape)}')
    with torch.no_grad():
      tensor.copy_(torch.from_numpy(value))

  for i, conv in enumerate(convs[:4]):
    put(conv.weight, np.asarray(trunk[f'conv_{i}']['kernel']).transpose(3, 2, 0, 1))
    put(conv.bias, trunk[f'conv_{i}']['bias'])
  put(convs[4].weight, np.asarray(trunk['hidden']['kernel']).transpose(3, 2, 0, 1))
  put(convs[4].bias, trunk['hidden']['bias'])
  put(linears[0].weight, np.asarray(enc['moments']['kernel']).T)
  put(linears[0].bias, enc['moments']['bias'])

  project = next(m for m in model.decoder if isinstance(m, nn.Linear))
  put(project.weight, np.asarray(dec['project']['kernel']).T)
  put(project.bias, dec['project']['bias'])
  ups = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
  names = ['expand'] + [f'up_{i}' for i in range(len(ups) - 1)]
  for up, name in zip(ups, names):
    put(up.weight, np.asarray(dec[name]['kernel'])[::-1, ::-1].transpose(2, 3, 0, 1))
    put(up.bias, dec[name]['bias'])


class TorchSlowVAEStep:
  """One Adam step of ``vae_loss`` on fixed data per call; call() returns the loss (a float).

  images: float32 numpy [B, H, W, C] (nlvae's layout; transposed to NCHW once here), noise [B, z].
  params: nlvae's parameters to start from (``load_flax_params``), else PyTorch's initialisation.
  threads: torch.set_num_threads for the whole process (set before the first step).
  device: 'cpu' or 'cuda'. Attributes: num_params, initial_loss (the loss before any step).
  """

  def __init__(self, images: np.ndarray, noise: np.ndarray, *, lr: float = 1e-4,
               threads: int | None = 2, seed: int = 0, params: dict | None = None,
               channels_last: bool = False, device: str = 'cpu'):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    _, height, _, channels = images.shape
    self.device = torch.device(device)
    self.model = SlowVAE(noise.shape[-1], channels, height)
    if params is not None:
      load_flax_params(self.model, params)
    self.model = self.model.to(self.device)
    self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(
        self.device)
    if channels_last:
      self.model = self.model.to(memory_format=torch.channels_last)
      self.images = self.images.contiguous(memory_format=torch.channels_last)
    self.noise = torch.from_numpy(np.ascontiguousarray(noise)).to(self.device)
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
    self.num_params = num_params(self.model)
    with torch.no_grad():
      self.initial_loss = float(vae_loss(self.model, self.images, self.noise))

  def __call__(self) -> float:
    self.optimizer.zero_grad(set_to_none=True)
    loss = vae_loss(self.model, self.images, self.noise)
    loss.backward()
    self.optimizer.step()
    return float(loss.detach())  # waits for the step (also on a GPU)


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': x}} -> {'a/b': numpy x} (for np.savez)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, 'items'):
      flat.update(flatten(dict(value), f'{prefix}{key}/'))
    else:
      flat[f'{prefix}{key}'] = np.asarray(value)
  return flat


def unflatten(flat) -> dict:
  tree = {}
  for key in flat:
    *path, leaf = key.split('/')
    node = tree
    for part in path:
      node = node.setdefault(part, {})
    node[leaf] = np.asarray(flat[key])
  return tree


_REPLY = 'BENCH_TORCH '  # prefix of the worker's protocol lines on stdout


class TorchWorker:
  """``TorchSlowVAEStep`` in a child process (``python -m experiments.bench_torch --worker``).

  The same interface (call -> loss; num_params, initial_loss, compile_s, info). A child keeps
  PyTorch's OpenMP threads and XLA's thread pool in different processes, as each framework runs
  for its users; the parent's call waits for the child's step (one pipe round trip, ~0.1 ms).
  images, noise, params: as for TorchSlowVAEStep (sent once through a temporary .npz file).
  omp_wait_policy: the child's OMP_WAIT_POLICY ('PASSIVE': idle OpenMP threads sleep instead of
  spinning; on a loaded machine the spinning threads' barriers cost PyTorch up to 10x per step,
  docs/benchmarks.md); None keeps this process's environment.
  """

  def __init__(self, images: np.ndarray, noise: np.ndarray, *, params: dict | None = None,
               threads: int | None = 2, device: str = 'cpu', lr: float = 1e-4,
               omp_wait_policy: str | None = None):
    self._folder = tempfile.TemporaryDirectory(prefix='nlvae_bench_torch_')
    path = f'{self._folder.name}/data.npz'
    arrays = {'images': images, 'noise': noise}
    if params is not None:
      arrays.update({f'params/{k}': v for k, v in flatten(params).items()})
    np.savez(path, **arrays)
    env = dict(os.environ)
    if omp_wait_policy:
      env['OMP_WAIT_POLICY'] = omp_wait_policy
    self._process = subprocess.Popen(
        [sys.executable, '-m', 'experiments.bench_torch', '--worker'], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, bufsize=1, env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root
    start = time.perf_counter()
    reply = self._ask(dict(cmd='init', path=path, threads=threads, device=device, lr=lr))
    self.compile_s = time.perf_counter() - start  # start-up, set-up and the first step
    self.num_params, self.initial_loss = reply['num_params'], reply['initial_loss']
    self.info = reply['info']

  def _ask(self, message: dict) -> dict:
    self._process.stdin.write(json.dumps(message) + '\n')
    self._process.stdin.flush()
    for line in self._process.stdout:
      if line.startswith(_REPLY):
        reply = json.loads(line[len(_REPLY):])
        if 'error' in reply:
          raise RuntimeError(f'torch worker: {reply["error"]}')
        return reply
    raise RuntimeError(f'torch worker exited (code {self._process.wait()}); see its stderr')

  def __call__(self) -> float:
    return self._ask({'cmd': 'step'})['loss']

  def close(self) -> None:
    if self._process.poll() is None:
      try:
        self._ask({'cmd': 'quit'})
      except RuntimeError:
        pass
      self._process.wait(timeout=30)
    self._folder.cleanup()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _worker() -> None:
  """The child's loop: one JSON request per stdin line, one _REPLY line per request."""
  step = None
  for line in sys.stdin:
    request = json.loads(line)
    try:
      if request['cmd'] == 'init':
        data = np.load(request['path'])
        params = unflatten({k[len('params/'):]: data[k] for k in data.files
                            if k.startswith('params/')}) or None
        step = TorchSlowVAEStep(data['images'], data['noise'], params=params,
                                threads=request['threads'], device=request['device'],
                                lr=request['lr'])
        step()  # the first step (allocations, oneDNN/cuDNN kernel choice), as jit's compile
        info = dict(torch=torch.__version__, threads=torch.get_num_threads(),
                    omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                    device=str(step.device),
                    matmul_gflops_per_s=matmul_gflops(device=request['device']))
        reply = dict(num_params=step.num_params, initial_loss=step.initial_loss, info=info)
      elif request['cmd'] == 'step':
        reply = {'loss': step()}
      elif request['cmd'] == 'quit':
        print(_REPLY + '{}', flush=True)
        return
      else:
        raise ValueError(f'unknown request {request}')
    except Exception:  # pylint: disable=broad-except
      reply = {'error': traceback.format_exc()}
    print(_REPLY + json.dumps(reply), flush=True)


def matmul_gflops(size: int = 2048, repeats: int = 5, device: str = 'cpu') -> float:
  """Median GFLOP/s of a float32 [size, size] torch matmul with torch's current threads."""
  a = torch.randn(size, size, device=device)
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    float(torch.mm(a, a)[0, 0])  # waits for the product (also on a GPU)
    times.append(time.perf_counter() - start)
  return 2 * size**3 / float(np.median(times[1:])) / 1e9


def layer_times(batch: int = 64, repeats: int = 10, image_size: int = 64,
                threads: int | None = None, device: str = 'cpu') -> dict:
  """Per-layer time of the PyTorch SlowVAE's conv layers, as bench_networks.layer_times times
  nlvae's: {layer: {"forward_ms", "forward_backward_ms"}}, the fastest of ``repeats`` calls;
  forward_backward: gradients of sum(y^2) for weight, bias and (but for the first layer) input.
  """
  if threads:
    torch.set_num_threads(threads)
  side = image_size
  layers = {}
  widths = (1, 32, 32, 64, 64)
  for i in range(4):
    layers[f'encoder conv_{i} ({widths[i]}->{widths[i + 1]}, {side}->{side // 2})'] = (
        nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1), (batch, widths[i], side, side), i > 0)
    side //= 2
  up = (64, 64, 32, 32, 1)
  for i in range(4):
    layers[f'decoder up_{i} ({up[i]}->{up[i + 1]}, {side}->{2 * side})'] = (
        nn.ConvTranspose2d(up[i], up[i + 1], 4, 2, 1), (batch, up[i], side, side), True)
    side *= 2
  generator = torch.Generator().manual_seed(0)
  results = {}
  for name, (module, shape, input_grad) in layers.items():
    module = module.to(device)
    x = torch.randn(shape, generator=generator).to(device).requires_grad_(input_grad)

    def forward(module=module, x=x):
      with torch.no_grad():
        return float(module(x)[0, 0, 0, 0])

    def forward_backward(module=module, x=x):
      module.zero_grad(set_to_none=True)
      x.grad = None
      (module(x)**2).sum().backward()
      return float(module.weight.grad[0, 0, 0, 0])

    timings = {}
    for label, fn in (('forward_ms', forward), ('forward_backward_ms', forward_backward)):
      fn()
      times = []
      for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
      timings[label] = 1e3 * min(times)
    results[name] = timings
  return results

if __name__ == '__main__':
  if sys.argv[1:] == ['--worker']:
    _worker()
  else:
    raise SystemExit('usage: python -m experiments.bench_torch --worker (used by '
                     'experiments.benchmark --only=pytorch)')
