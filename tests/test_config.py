"""Invalid configurations are rejected with errors that name the field and the allowed range."""

from __future__ import annotations

import pytest

from scaling_env import ConfigError, EnvConfig, ServerlessScalingEnv


@pytest.mark.parametrize(
    "data, field, fragment",
    [
        (
            {"workload": {"shape": {"kind": "constant", "rate_rps": -5}}},
            "workload.shape.constant.rate_rps",
            "greater than or equal to 0",
        ),
        (
            {"scaling": {"min_instances": 5, "max_instances": 2}},
            "scaling",
            "min_instances (5) must be <= max_instances (2)",
        ),
        ({"scaling": {"max_instances": 0}}, "scaling.max_instances", "greater than or equal to 1"),
        ({"step_seconds": 0}, "step_seconds", "greater than 0"),
        ({"instances": {"concurrency": "ten"}}, "instances.concurrency", "valid integer"),
        ({"instances": {"service_seconds": [1]}}, "instances.service_seconds", "valid number"),
        ({"instances": {"concurency": 10}}, "instances.concurency", "unknown key"),
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"workload": {"shape": {"kind": "sawtooth"}}}, "workload.shape", "kind"),
        (
            {"workload": {"shape": {"kind": "diurnal", "trough_rps": 10, "peak_rps": 5}}},
            "workload.shape.diurnal",
            "peak_rps (5.0) must be >= trough_rps (10.0)",
        ),
        ({"load_balancer": {"algorithm": "fastest"}}, "load_balancer.algorithm", "round_robin"),
        (
            {"failures": {"outages": [{"time_seconds": 10, "fraction": 1.5}]}},
            "failures.outages.0.fraction",
            "less than or equal to 1",
        ),
        ({"scaling": {"scale_steps": [1, 1]}}, "scaling", "repeated"),
        ({"instances": {"memory_base_mb": 5000}}, "instances.memory_base_mb", "below the limit"),
    ],
)
def test_bad_values_name_the_field(data, field, fragment):
    with pytest.raises(ConfigError) as exc:
        EnvConfig.from_dict(data)
    msg = str(exc.value)
    assert field in msg and fragment in msg, msg


def test_errors_state_the_allowed_range():
    with pytest.raises(ConfigError) as exc:
        EnvConfig.from_dict({"instances": {"concurrency": 0}, "workload": {"shape": {"kind": "spike", "peak_rps": -1}}})
    msg = str(exc.value)
    assert "instances.concurrency" in msg and "allowed: 1 <= value <= 1000" in msg, msg
    assert "workload.shape.spike.peak_rps" in msg and "allowed: 0.0 <= value" in msg, msg


def test_env_constructor_reports_config_errors():
    with pytest.raises(ConfigError, match="scaling.max_instances"):
        ServerlessScalingEnv({"scaling": {"max_instances": -1}})


def test_yaml_round_trip_and_file_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("step_seconds: 30\nscaling:\n  max_instances: 16\n")
    cfg = EnvConfig.from_yaml(good)
    assert cfg.step_seconds == 30 and cfg.scaling.max_instances == 16 and cfg.instances.concurrency == 10

    bad = tmp_path / "bad.yaml"
    bad.write_text("scaling:\n  max_instances: -3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*\n.*scaling.max_instances"):
        EnvConfig.from_yaml(bad)

    broken = tmp_path / "broken.yaml"
    broken.write_text("scaling: [1, 2\n")
    with pytest.raises(ConfigError, match=r"(?s)broken.yaml: not valid YAML.*line 2"):
        EnvConfig.from_yaml(broken)

    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        EnvConfig.from_yaml(listy)

    with pytest.raises(ConfigError, match="cannot read"):
        EnvConfig.from_yaml(tmp_path / "missing.yaml")


def test_every_field_has_a_description_with_unit_or_meaning():
    def walk(model):
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                yield from walk(ann)
            elif name not in ("kind", "shape", "outages", "algorithm", "weights"):
                yield model.__name__, name, field.description

    missing = [(m, n) for m, n, d in walk(EnvConfig) if not d]
    assert not missing, missing


def test_default_yaml_spells_out_the_defaults():
    from pathlib import Path

    path = Path(__file__).parent.parent / "configs" / "env" / "default.yaml"
    assert EnvConfig.from_yaml(path) == EnvConfig()
