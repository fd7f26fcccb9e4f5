"""The ``run`` and ``push-checkpoint`` commands: flags, and the upload's checks against the policy."""

from __future__ import annotations

from click.testing import CliRunner
from operator_fakes import FakeKube

from controller import checkpoint as ckpt
from controller import run_cmd
from controller.policy import parse
from learners.space import ConfigSpace, Knob

POLICY = "/apis/autocm.io/v1alpha1/namespaces/ml/sizingpolicies/web"
SPEC = {"targetRef": {"kind": "Deployment", "name": "web"},
        "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
        "knobs": {"replicas": {"min": 1, "max": 8}},
        "learner": {"name": "vconf", "checkpoint": "configmap/pretrained"}}


def test_run_help_lists_the_documented_flags():
    out = CliRunner().invoke(run_cmd.run, ["--help"]).output
    for flag in ("--kubeconfig", "--namespace", "--prometheus", "--interval", "--standalone / --peering",
                 "--metrics-port", "--pause"):
        assert flag in out


def test_share_max_age_must_exceed_share_every():
    result = CliRunner().invoke(run_cmd.run, ["--prometheus", "http://prom:9090", "--share-every", "60",
                                              "--share-max-age", "60"])
    assert result.exit_code == 2 and "--share-max-age" in result.output and "stale" in result.output


def test_run_requires_a_prometheus_url():
    result = CliRunner().invoke(run_cmd.run, [], env={"AUTOCM_PROMETHEUS_URL": ""})
    assert result.exit_code == 2 and "--prometheus" in result.output


def push(tmp_path, monkeypatch, space: ConfigSpace, learner: str = "vconf", state: dict | None = None,
         spec: dict | None = None):
    kube = FakeKube()
    kube.put(POLICY, {"metadata": {"name": "web", "namespace": "ml"}, "spec": spec or SPEC})
    monkeypatch.setattr(run_cmd, "_api_client", lambda kubeconfig: None)
    monkeypatch.setattr(run_cmd, "probe_apiserver", lambda client, **_: "v1.34.0")
    monkeypatch.setattr("controller.kube.Kube", lambda client: kube)
    path = tmp_path / "ckpt.bin"
    path.write_bytes(ckpt.encode(learner, space, state if state is not None else {"epsilon": 0.1}))
    result = CliRunner().invoke(run_cmd.push_checkpoint, [str(path), "--policy", "web", "-n", "ml"])
    return kube, result


def test_push_checkpoint_uploads_to_the_configmap_the_policy_names(tmp_path, monkeypatch):
    space = parse(SPEC, "ml", "web").space
    kube, result = push(tmp_path, monkeypatch, space)
    assert result.exit_code == 0, result.output
    assert "to configmap/pretrained in ml" in result.output
    cm = kube.objects["/api/v1/namespaces/ml/configmaps/pretrained"]
    assert ckpt.decode(ckpt.blob_of(cm), "vconf", space).state == {"epsilon": 0.1}


def test_push_checkpoint_refuses_other_knobs(tmp_path, monkeypatch):
    kube, result = push(tmp_path, monkeypatch, ConfigSpace.of(Knob("replicas", 1, 16)))
    assert result.exit_code == run_cmd.EXIT_USAGE and "trained for knobs" in result.output
    assert "/api/v1/namespaces/ml/configmaps/pretrained" not in kube.objects


def test_push_checkpoint_says_which_settings_the_checkpoint_runs_with_and_refuses_bad_ones(tmp_path, monkeypatch):
    """The operator runs a checkpoint with its provenance's settings (spec.learner.settings win); the
    upload says so, and refuses settings the operator would not use before they reach the cluster."""
    spec = {**SPEC, "learner": {**SPEC["learner"], "settings": {"epsilon_min": 0.2}}}
    space = parse(spec, "ml", "web").space
    state = {"epsilon": 0.1, "provenance": {"settings": {"epsilon_min": 0.05, "hidden": 32}}}
    _kube, result = push(tmp_path, monkeypatch, space, state=state, spec=spec)
    assert result.exit_code == 0, result.output
    said = 'chosen with: {"epsilon_min": 0.05, "hidden": 32}; spec.learner.settings override epsilon_min'
    assert said in result.output, result.output
    bad = {"epsilon": 0.1, "provenance": {"settings": {"hidden": 10**9}}}
    kube, result = push(tmp_path, monkeypatch, space, state=bad, spec=spec)
    assert result.exit_code == run_cmd.EXIT_USAGE, result.output
    assert "provenance.settings.hidden" in result.output and "would not use them" in result.output
    assert "/api/v1/namespaces/ml/configmaps/pretrained" not in kube.objects


def test_priority_spread_gives_pods_of_one_deployment_distinct_stable_priorities():
    pods = [f"autocm-7d9c5b6f4-{suffix}" for suffix in ("x2k9q", "b8w4m", "p5n7z", "h3j6t")]
    got = [run_cmd.spread_priority(100, 1000, p) for p in pods]
    assert len(set(got)) == len(pods)  # distinct: kopf would pause peers of equal priority
    assert all(100 <= g < 1100 for g in got)
    assert got == [run_cmd.spread_priority(100, 1000, p) for p in pods]  # stable for a pod's life
    assert run_cmd.spread_priority(100, 0, pods[0]) == run_cmd.spread_priority(100, 1, pods[0]) == 100
