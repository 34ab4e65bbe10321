"""A trained PPO, MaskablePPO or RecurrentPPO model as a batched policy: deterministic actions on normalised
observations, with the memory it was trained with (stacked frames or the LSTM state).

``load_ppo_policy(path, env_config)`` takes a run folder (its best model if there is one, else its final
model) or a model ``.zip`` (a checkpoint, ``best_model.zip``...), restores the VecNormalize observation
statistics saved next to it (frozen: inference never updates them) and checks that the model's actions are the
env config's ``scaling.scale_steps``; the policy's ``env_config`` is the given one with the run's
``env_overrides`` merged in (the env the model was trained on: run its episodes there).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from scaling_env.config import ConfigError, EnvConfig, deep_merge, read_yaml_mapping
from scaling_env.fields import N_OBS
from scaling_env.files import ManifestError, check_manifest

from ..base import ConfigLike, PolicyBase, PolicyParams

RUN_FILES = {
    "config": "config.yaml",
    "scenarios": "scenarios.yaml",
    "best": "best_model.zip",
    "final": "final_model.zip",
    "checkpoints": "checkpoints",
}


def vecnormalize_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics of a saved model live (they may not exist: no normalisation).

    ``best_model.zip`` -> ``best_vecnormalize.pkl``, ``final_model.zip`` -> ``final_vecnormalize.pkl``,
    ``rl_model_<t>_steps.zip`` -> ``rl_model_vecnormalize_<t>_steps.pkl`` (SB3's CheckpointCallback), any
    other ``<name>.zip`` -> ``<name>_vecnormalize.pkl``.
    """
    m = re.fullmatch(r"(.*)_(\d+)_steps", model_path.stem)
    if m:
        return model_path.with_name(f"{m.group(1)}_vecnormalize_{m.group(2)}_steps.pkl")
    if model_path.stem.endswith("_model"):
        return model_path.with_name(model_path.stem[: -len("_model")] + "_vecnormalize.pkl")
    return model_path.with_name(model_path.stem + "_vecnormalize.pkl")


def find_model(path: str | Path) -> tuple[Path, Path | None]:
    """(model .zip, its run folder or None) for a run folder or a model file."""
    path = Path(path)
    if path.is_dir():
        for key in ("best", "final"):
            if (path / RUN_FILES[key]).is_file():
                return path / RUN_FILES[key], _checked_run_folder(path) if (
                    path / RUN_FILES["config"]
                ).is_file() else path
        raise ConfigError(f"{path}: no {RUN_FILES['best']} or {RUN_FILES['final']} in this run folder")
    if path.suffix != ".zip" and path.with_suffix(".zip").is_file():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file or run folder")
    for folder in (path.parent, path.parent.parent):  # the run folder, or the run folder of a checkpoint
        if (folder / RUN_FILES["config"]).is_file():
            return path, _checked_run_folder(folder)
    return path, None


def _checked_run_folder(folder: Path) -> Path:
    """The run folder, once its config.yaml is known to hold a config (an empty one would mean the defaults)."""
    if not read_yaml_mapping(folder / RUN_FILES["config"], "training config"):
        raise ConfigError(f"{folder / RUN_FILES['config']}: empty; the run's training config is lost")
    return folder


def manifest_path(model_path: Path) -> Path:
    """The manifest written after a model and its statistics (``<name>.json``; ``best_model.json``...)."""
    return model_path.with_suffix(".json")


def check_model_file(model_path: Path) -> None:
    """ConfigError naming the file unless it is a whole SB3 model archive: a zip whose members read back
    with their checksums, holding ``data`` and ``policy.pth``; and, if a manifest was written beside it, the
    files it lists are those that were written (not a half-replaced pair)."""
    try:
        with zipfile.ZipFile(model_path) as z:
            names = set(z.namelist())
            for member in ("data", "policy.pth"):
                if member not in names:
                    raise ConfigError(f"{model_path}: not a stable-baselines3 model file (no '{member}' inside)")
            bad = z.testzip()  # reads every member and checks its CRC
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, NotImplementedError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{model_path}: not a readable stable-baselines3 model file ({exc})") from None
    if bad is not None:
        raise ConfigError(f"{model_path}: damaged model file ('{bad}' inside fails its checksum)")
    manifest = manifest_path(model_path)
    if manifest.exists():
        try:
            check_manifest(manifest)
        except ManifestError as exc:
            raise ConfigError(f"{model_path}: incomplete or damaged: {exc}") from None


def saved_algo(model_path: Path) -> str:
    """``ppo``, ``maskable_ppo`` or ``recurrent_ppo``: the algorithm of a saved model, read from its stored
    policy class."""
    try:
        with zipfile.ZipFile(model_path) as z:
            data = z.read("data").decode("utf-8", "replace")
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{model_path}: not a stable-baselines3 model file ({exc})") from None
    if "Maskable" in data:
        return "maskable_ppo"
    if "RecurrentActorCriticPolicy" in data:
        return "recurrent_ppo"
    return "ppo"


def is_maskable(model_path: Path) -> bool:
    """Whether a saved SB3 model is sb3-contrib's MaskablePPO (read from its stored policy class)."""
    return saved_algo(model_path) == "maskable_ppo"


def algo_class(algo: str) -> Any:
    """The SB3 / sb3-contrib class of ``ppo``, ``maskable_ppo`` or ``recurrent_ppo``."""
    from sb3_contrib import MaskablePPO, RecurrentPPO
    from stable_baselines3 import PPO

    return {"ppo": PPO, "maskable_ppo": MaskablePPO, "recurrent_ppo": RecurrentPPO}[algo]


def apply_env_overrides(config: EnvConfig, overrides: dict[str, Any], source: str = "env_overrides") -> EnvConfig:
    """``config`` with ``overrides`` (a nested dict of env config values) merged in; ConfigError names the field."""
    if not overrides:
        return config
    return EnvConfig.from_dict(deep_merge(config.model_dump(mode="json"), overrides), source=source)


def load_sb3_model(cls: Any, model_path: Path, **kwargs: Any) -> Any:
    """``cls.load(model_path, **kwargs)`` (PPO or MaskablePPO), or ConfigError naming the file if it is not a
    whole, loadable model (checked first with :func:`check_model_file`; then any failure of the load)."""
    check_model_file(model_path)
    try:
        return cls.load(str(model_path), **kwargs)
    except Exception as exc:  # torch/pickle/zip raise many types for damaged bytes; all mean the same here
        reason = (str(exc).strip().splitlines() or [""])[0][:160]  # torch's messages run to many lines
        raise ConfigError(
            f"{model_path}: damaged or not a stable-baselines3 model, it does not load ({type(exc).__name__}: {reason})"
        ) from None


def load_vecnormalize(stats_path: Path, venv: Any) -> Any:
    """``VecNormalize.load(stats_path, venv)``, or ConfigError naming the file if it is empty, cut, not a
    pickle or not VecNormalize statistics (or their observation shape is not the env's)."""
    import pickle

    from stable_baselines3.common.vec_env import VecNormalize

    try:
        size = stats_path.stat().st_size
    except OSError as exc:
        raise ConfigError(f"{stats_path}: cannot read the normalisation statistics ({exc.strerror})") from None
    if size == 0:
        raise ConfigError(f"{stats_path}: empty file, not normalisation statistics (an interrupted write?)")
    try:
        with open(stats_path, "rb") as fh:
            stats = pickle.load(fh)
    except Exception as exc:  # unpickling garbage raises almost anything (UnpicklingError, EOFError, ...)
        raise ConfigError(
            f"{stats_path}: not readable normalisation statistics ({type(exc).__name__}: {exc}); "
            "the file is damaged or not a VecNormalize .pkl"
        ) from None
    if not isinstance(stats, VecNormalize):
        raise ConfigError(f"{stats_path}: holds a {type(stats).__name__}, not VecNormalize normalisation statistics")
    shape = getattr(getattr(stats, "obs_rms", None), "mean", np.zeros(0)).shape
    if stats.norm_obs and tuple(shape) != tuple(venv.observation_space.shape):
        raise ConfigError(
            f"{stats_path}: statistics of observations of shape {tuple(shape)}, the env gives "
            f"{tuple(venv.observation_space.shape)}"
        )
    stats.set_venv(venv)
    return stats


def trained_scale_steps(run_dir: Path | None) -> list[tuple[str, tuple[int, ...]]]:
    """(scenario, scale_steps) of every env config a run trained or evaluated on, from its scenarios.yaml."""
    if run_dir is None or not (run_dir / RUN_FILES["scenarios"]).is_file():
        return []
    path = run_dir / RUN_FILES["scenarios"]
    data = read_yaml_mapping(path, "run scenarios")
    out = []
    try:
        for group in ("train", "eval"):
            for name, env in (data.get(group) or {}).items():
                out.append((name, tuple(env["scaling"]["scale_steps"])))
    except (AttributeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: damaged run scenarios file (no {exc} where scaling.scale_steps should be)"
        ) from None
    return out


class PPOPolicyParams(PolicyParams):
    deterministic: bool = True


class PPOPolicy(PolicyBase):
    """Actions of an SB3 PPO / MaskablePPO / RecurrentPPO model (deterministic unless ``params.deterministic`` is
    False); observations are normalised with the frozen VecNormalize statistics the model was trained with
    (``vec_normalize``; None: no normalisation).

    Memory, as in training: a model whose observation is k times the env's was trained with k stacked frames
    (SB3's VecFrameStack over VecNormalize: the newest normalised observation last, zeros before the first
    one); a RecurrentPPO model carries its LSTM state. Both start afresh at :meth:`reset` (every episode of a
    batch starts together, as in ``scaling_env.rollout``). MaskablePPO uses the action masks of the env given to
    :meth:`bind` (none if no env is bound).
    """

    name = "ppo"
    Params = PPOPolicyParams

    def __init__(
        self,
        env_config: ConfigLike,
        params: PPOPolicyParams | dict | None = None,
        *,
        model: Any,
        vec_normalize: Any = None,
        source: str = "",
        n_obs: int = N_OBS,
        corrections: bool = False,
    ) -> None:
        super().__init__(env_config, params)
        n = int(model.action_space.n)
        steps = self.env_config.scaling.scale_steps
        if n != len(steps) and not corrections:  # a residual model's actions are corrections, not steps
            raise ConfigError(
                f"PPO model {source} has {n} actions but the env config's scaling.scale_steps "
                f"has {len(steps)} ({list(steps)}): it was trained on another action set"
            )
        shape = tuple(model.observation_space.shape)
        if len(shape) != 1 or shape[0] % n_obs:
            raise ConfigError(
                f"PPO model {source} observes shape {model.observation_space.shape}, the env gives ({n_obs},)"
            )
        self.n_obs = n_obs
        self.n_stack = shape[0] // n_obs
        self.model = model
        self.vec_normalize = vec_normalize
        self.maskable = type(model).__name__ == "MaskablePPO"
        self.recurrent = type(model).__name__ == "RecurrentPPO"
        self.source = source
        self._env: Any = None
        self._stack: np.ndarray | None = None
        self._lstm: Any = None
        self._starts: np.ndarray | None = None

    def bind(self, env: Any) -> None:
        """Keep ``env`` for its action masks (MaskablePPO)."""
        self._env = env

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        super().reset(seed, num_envs)
        self._stack = None
        self._lstm = None
        self._starts = None

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the model was trained on them (the frozen VecNormalize statistics, if any)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.vec_normalize is None:
            return obs
        return self.vec_normalize.normalize_obs(obs)

    def _stacked(self, x: np.ndarray) -> np.ndarray:
        """The last ``n_stack`` normalised observations side by side, as VecFrameStack gives them."""
        if self.n_stack == 1:
            return x
        if self._stack is None or self._stack.shape[0] != len(x):
            self._stack = np.zeros((len(x), self.n_obs * self.n_stack), dtype=np.float32)
        self._stack = np.roll(self._stack, -self.n_obs, axis=1)
        self._stack[:, -self.n_obs :] = x
        return self._stack

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Actions for a batch: (B, n_obs) raw observations -> (B,) int64; ``info`` is not used."""
        x = self._stacked(self.normalize(obs))
        deterministic = self.params.deterministic
        if self.maskable:
            masks = self._env.action_masks() if self._env is not None and hasattr(self._env, "action_masks") else None
            actions, _ = self.model.predict(x, deterministic=deterministic, action_masks=masks)
        elif self.recurrent:
            if self._starts is None or len(self._starts) != len(x):
                self._starts, self._lstm = np.ones(len(x), dtype=bool), None
            actions, self._lstm = self.model.predict(
                x, state=self._lstm, episode_start=self._starts, deterministic=deterministic
            )
            self._starts = np.zeros(len(x), dtype=bool)
        else:
            actions, _ = self.model.predict(x, deterministic=deterministic)
        return np.asarray(actions, dtype=np.int64).reshape(len(x))


def load_ppo_policy(path: str | Path, env_config: EnvConfig, scenario: str | None = None) -> Any:
    """A :class:`PPOPolicy` from a run folder (best model, else final) or a model .zip, for ``env_config`` with
    the run's ``env_overrides`` merged in (the policy's ``env_config``: the env its episodes must run on). A run
    trained with ``residual`` gives a :class:`~agents.learned.residual.ResidualPolicy`: the run's rule (its
    ``@tuned`` setting read for ``scenario``) corrected by the model."""
    from scaling_env.envs.sb3 import ServerlessScalingVecEnv

    model_path, run_dir = find_model(path)
    steps = tuple(env_config.scaling.scale_steps)
    for trained_on, trained in trained_scale_steps(run_dir):
        if trained != steps:
            raise ConfigError(
                f"{model_path} was trained with scaling.scale_steps {list(trained)} (scenario "
                f"{trained_on}) but the env config has {list(steps)}: the actions would mean other "
                "changes"
            )
    cfg = read_yaml_mapping(run_dir / RUN_FILES["config"], "training config") if run_dir is not None else {}
    # build the env the model was trained on: the run's env_overrides (e.g. the v1 observation) on this config
    env_config = apply_env_overrides(env_config, cfg.get("env_overrides") or {}, f"{run_dir}: env_overrides")
    check_model_file(model_path)
    model = load_sb3_model(algo_class(saved_algo(model_path)), model_path, device="cpu")
    stats = vecnormalize_path(model_path)
    vec_normalize = None
    residual = cfg.get("residual")
    venv: Any = ServerlessScalingVecEnv(1, env_config)
    if residual:  # the model observes the env's observation and the rule's proposal
        from .residual import ResidualVecEnv

        experts = residual.get("experts") or ()
        venv = ResidualVecEnv(
            venv,
            residual["policy"],
            int(residual["max_offset"]),
            names=[scenario],
            experts=experts,
            hold=int(residual.get("hold", 1)),
            sync=bool(residual.get("sync", False)),
        )
    if stats.is_file():
        vec_normalize = load_vecnormalize(stats, venv)
        vec_normalize.training = False  # frozen statistics
        vec_normalize.norm_reward = False
    elif run_dir is not None:
        if (cfg.get("normalize") or {}).get("obs", False):
            raise ConfigError(f"{model_path}: the run normalised observations but {stats.name} is missing")
    else:
        # outside its run folder nothing says whether the model expects normalised observations: a model
        # trained with them would silently act on raw ones, so ask for the statistics
        raise ConfigError(
            f"{model_path}: its observation statistics {stats.name} are not beside it and it is not "
            "in a run folder; copy the .pkl with the model (or load it from its run folder)"
        )
    n_obs = int(venv.observation_space.shape[0])
    if not residual:
        return PPOPolicy(env_config, model=model, vec_normalize=vec_normalize, source=str(model_path), n_obs=n_obs)
    from .residual import ResidualPolicy, check_rule_settings, make_rule

    agent = PPOPolicy(
        env_config,
        model=model,
        vec_normalize=vec_normalize,
        source=str(model_path),
        n_obs=n_obs,
        corrections=True,
    )
    rule = make_rule(residual["policy"], env_config, scenario=scenario)
    experts = [make_rule(x, env_config, scenario=scenario) for x in residual.get("experts") or ()]
    specs = [residual["policy"], *(residual.get("experts") or ())]
    check_rule_settings(run_dir, scenario, dict(zip(specs, [rule, *experts])))
    return ResidualPolicy(
        env_config,
        rule=rule,
        agent=agent,
        max_offset=int(residual["max_offset"]),
        experts=experts,
        hold=int(residual.get("hold", 1)),
        sync=bool(residual.get("sync", False)),
    )
