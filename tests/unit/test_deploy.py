"""The deployment files in deploy/ hold the fields an eBPF agent needs, and agree with each
other and with ebpf-run's own command line.

What runs here: the systemd unit is parsed and checked with `systemd-analyze verify`
(systemd 252 on Debian 12); the Kubernetes manifests are parsed and checked field by field,
and validated strictly against the Kubernetes API's own schemas (kubernetes-validate, for
1.25 and the newest version it knows); the ConfigMap's specs go through ebpf-run's checker;
prometheus.yml goes through `promtool check config`.

What cannot run here: no systemd is PID 1 on this project's machines, so the unit is never
started and its sandboxing is not exercised (its capability set is, by
tests/kernel/test_deploy_caps.py); there is no Kubernetes, so the manifests are never
applied; Debian's promtool is built without Kubernetes service discovery, so there promtool
checks every job but the kubernetes_sd one, which the field checks below cover. Without
systemd-analyze, promtool or kubernetes-validate their tests skip, except under CI, where
they fail.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from runner import pipeline
from runner.support import cache_dir

from .util import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "ebpf-run.service"
DAEMONSET = DEPLOY / "kubernetes" / "daemonset.yaml"
CONFIGMAP = DEPLOY / "kubernetes" / "configmap.yaml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
DOCS = ROOT / "docs" / "deploy.md"

SPECS_DIR = "/etc/ebpf-run/specs"
PORT = 9435
# What the agent needs (docs/deploy.md says why): the unit runs as root with a bounding set,
# the pod adds SYS_RESOURCE (it cannot set RLIMIT_MEMLOCK as LimitMEMLOCK= does).
UNIT_CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_SYS_PTRACE"}
POD_CAPS = {"BPF", "PERFMON", "SYSLOG", "SYS_PTRACE", "SYS_RESOURCE"}
# mountPath -> (host path, read-only)
HOST_MOUNTS = {
    "/sys/fs/bpf": ("/sys/fs/bpf", True),
    "/sys/kernel/tracing": ("/sys/kernel/tracing", True),
    "/sys/kernel/debug": ("/sys/kernel/debug", True),
    "/sys/fs/cgroup": ("/sys/fs/cgroup", True),
    "/sys/kernel/btf": ("/sys/kernel/btf", True),
    "/lib/modules": ("/lib/modules", True),
    "/usr/src": ("/usr/src", True),
    "/var/cache/ebpf-run": ("/var/cache/ebpf-run", False),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"CI is set and {name} is missing; run ./scripts/setup")
        pytest.skip(f"{name} is not installed (./scripts/setup installs it)")
    return path


def unit() -> Dict[str, Dict[str, List[str]]]:
    """The unit as systemd reads it: section -> key -> the values of its lines, in order."""
    sections: Dict[str, Dict[str, List[str]]] = {}
    current: Dict[str, List[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(key: str) -> str:
    values = unit()["Service"].get(key, [])
    assert len(values) == 1, f"{key}= given {len(values)} times in {UNIT.name}"
    return values[0]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def container() -> Dict[str, Any]:
    (only,) = load(DAEMONSET)["spec"]["template"]["spec"]["containers"]
    return only


def metrics_port(args: List[str]) -> int:
    """The port of `serve ... --metrics HOST:PORT`."""
    assert args[:2] == ["serve", SPECS_DIR] and args.count("--metrics") == 1, args
    return int(args[args.index("--metrics") + 1].rsplit(":", 1)[1])


# ---------------------------------------------------------------- the systemd unit


def test_the_unit_runs_serve_on_the_specs_directory_with_metrics():
    argv = shlex.split(service("ExecStart"))
    assert Path(argv[0]).name == "ebpf-run" and os.path.isabs(argv[0])
    assert argv[1:] == ["serve", SPECS_DIR, "--metrics", f"0.0.0.0:{PORT}"]
    assert metrics_port(argv[1:]) == PORT


def test_the_unit_reloads_with_sighup_and_stops_as_ebpf_run_handles():
    assert shlex.split(service("ExecReload")) == ["/bin/kill", "-HUP", "$MAINPID"]
    assert service("KillSignal") in ("SIGINT", "SIGTERM")  # both detach and exit 0
    assert service("Restart") == "on-failure"
    # a usage error (2) and a spec error (1) come back on every restart
    assert set(service("RestartPreventExitStatus").split()) == {"1", "2"}


def test_the_unit_has_the_capabilities_it_needs_and_nothing_more():
    assert set(service("CapabilityBoundingSet").split()) == UNIT_CAPS
    assert "AmbientCapabilities" not in unit()["Service"]  # root: the bounding set is all
    assert service("LimitMEMLOCK") == "infinity"  # kernels before 5.11, no CAP_SYS_RESOURCE


def test_the_unit_is_hardened_without_hiding_what_bcc_reads():
    assert service("NoNewPrivileges") == "yes"
    assert service("ProtectSystem") == "strict"
    assert service("ProtectHome") in ("yes", "read-only")
    for key in ("PrivateTmp", "PrivateDevices", "ProtectControlGroups", "RestrictSUIDSGID",
                "LockPersonality", "RestrictNamespaces"):
        assert service(key) == "yes", key
    # These would hide /proc/kallsyms, /usr/lib/modules (BCC's headers), or drop CAP_SYSLOG.
    for key in ("ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                "ProtectProc", "PrivateNetwork", "MemoryDenyWriteExecute"):
        assert key not in unit()["Service"], key


def test_the_units_cache_is_where_ebpf_run_looks_and_the_one_writable_path(monkeypatch):
    env = dict(v.split("=", 1) for v in unit()["Service"]["Environment"])
    assert service("CacheDirectory") == "ebpf-run"  # /var/cache/ebpf-run, read-write
    assert service("CacheDirectoryMode") == "0700"
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    assert next(cache_dir._locations()) == "/var/cache/ebpf-run"
    assert "ReadWritePaths" not in unit()["Service"]  # CacheDirectory= is the only one


def verify(text: str, tmp_path: Path) -> Tuple[int, str]:
    (tmp_path / UNIT.name).write_text(text)
    done = subprocess.run([tool("systemd-analyze"), "verify", str(tmp_path / UNIT.name)],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, (done.stdout + done.stderr).strip()


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    text = UNIT.read_text()
    program = shlex.split(service("ExecStart"))[0]
    # ebpf-run is not installed at the unit's path here: put an executable in its place.
    rc, said = verify(text.replace(f"ExecStart={program} ", f"ExecStart={sys.executable} "),
                      tmp_path)
    assert (rc, said) == (0, "")
    if not os.path.exists(program):  # and what verify says of the unit as shipped
        rc, said = verify(text, tmp_path)
        assert rc != 0
        assert said == f"{UNIT.name}: Command {program} is not executable: " \
                       "No such file or directory"


# ---------------------------------------------------------------- Kubernetes

# The oldest Kubernetes the manifests are written for (seccompProfile and startupProbe are
# fields from 1.19; the AppArmor annotation, not the 1.30 field), and the newest known.
KUBERNETES_OLDEST = "1.25.0"


def kubernetes_validate() -> Any:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        if in_ci():
            pytest.fail("CI is set and kubernetes-validate is missing; run ./scripts/setup")
        pytest.skip("kubernetes-validate is not installed (the test extras have it)")


@pytest.mark.parametrize("path", [DAEMONSET, CONFIGMAP], ids=lambda p: p.name)
def test_the_manifests_match_the_kubernetes_api_schemas(path):
    """Strict: a misspelt or misplaced field fails, as `kubectl apply` would refuse it."""
    kv = kubernetes_validate()
    for version in (KUBERNETES_OLDEST, kv.latest_version()):
        kv.validate(load(path), version, strict=True)  # raises ValidationError
    bad = load(path)
    bad["metadata"]["lables"] = {}
    with pytest.raises(kv.ValidationError, match="'lables' was unexpected"):
        kv.validate(bad, KUBERNETES_OLDEST, strict=True)



def test_the_daemonset_runs_serve_with_the_units_arguments():
    c = container()
    assert c["args"] == shlex.split(service("ExecStart"))[1:]
    (port,) = c["ports"]
    assert port == {"name": "metrics", "containerPort": metrics_port(c["args"]),
                    "protocol": "TCP"}
    assert {"name": "XDG_CACHE_HOME", "value": "/var/cache"} in c["env"]


def test_the_daemonset_sees_the_hosts_processes_with_the_capabilities_it_needs():
    pod = load(DAEMONSET)["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    sc = container()["securityContext"]
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": sorted(POD_CAPS)}
    assert {"CAP_" + c for c in POD_CAPS - {"SYS_RESOURCE"}} == UNIT_CAPS
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsUser"] == 0
    assert sc["seccompProfile"] == {"type": "Unconfined"}


def test_the_daemonset_mounts_each_host_path_read_only_where_it_should():
    pod = load(DAEMONSET)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    for path, (host, read_only) in HOST_MOUNTS.items():
        assert path in mounts, path
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == host
        assert mounts[path].get("readOnly", False) is read_only, path
    specs = mounts[SPECS_DIR]
    assert specs["readOnly"] is True
    assert volumes[specs["name"]]["configMap"]["name"] == load(CONFIGMAP)["metadata"]["name"]
    hosted = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert hosted == {host for host, _ in HOST_MOUNTS.values()}  # and no other


def test_the_daemonset_probes_metrics_and_bounds_its_resources():
    c = container()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert set(c["resources"]["limits"]) == {"memory"}  # no CPU throttling of the reads


def test_the_configmaps_specs_are_the_shipped_tools_and_pass_the_checker():
    cm = load(CONFIGMAP)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["namespace"] == load(DAEMONSET)["metadata"]["namespace"]
    assert len(cm["data"]) >= 2
    for name, text in cm["data"].items():
        assert name.endswith(".yaml")
        assert text == (ROOT / "specs" / "tools" / name).read_text(), name
        spec = pipeline.check(f"{CONFIGMAP}:{name}", raw=text.encode())
        assert spec.name == name[:-len(".yaml")]
        assert spec.aggregations, f"{name}: a spec for the agent exports metrics"


# ---------------------------------------------------------------- Prometheus


def jobs() -> Dict[str, Dict[str, Any]]:
    return {j["job_name"]: j for j in load(PROMETHEUS_YML)["scrape_configs"]}


def meta_label(label: str) -> str:
    """Prometheus' name for a pod label: what is not [a-zA-Z0-9_] becomes _."""
    return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)


def test_the_kubernetes_job_keeps_the_daemonsets_pods_and_port():
    ds = load(DAEMONSET)
    labels = ds["spec"]["template"]["metadata"]["labels"]
    (job,) = [j for j in jobs().values() if "kubernetes_sd_configs" in j]
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod" and sd["namespaces"]["names"] == [ds["metadata"]["namespace"]]
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"]
             if r.get("action") == "keep"}
    (name, value), = labels.items()
    assert keeps[(meta_label(name),)] == value
    assert keeps[("__meta_kubernetes_pod_container_port_name",)] == \
        container()["ports"][0]["name"]
    targets = {r.get("target_label"): r["source_labels"] for r in job["relabel_configs"]}
    assert targets["node"] == ["__meta_kubernetes_pod_node_name"]


def test_the_host_jobs_scrape_the_units_port_with_a_node_label():
    static = jobs()["ebpf-run-hosts"]["static_configs"]
    for group in static:
        assert "node" in group["labels"]
        assert all(t.endswith(f":{PORT}") for t in group["targets"])
    assert jobs()["ebpf-run-files"]["file_sd_configs"][0]["files"]


def test_promtool_accepts_the_configuration(tmp_path):
    promtool = tool("promtool")
    done = subprocess.run([promtool, "check", "config", str(PROMETHEUS_YML)],
                          capture_output=True, text=True, timeout=120)
    said = done.stdout + done.stderr
    if done.returncode != 0 and "field kubernetes_sd_configs not found" in said:
        # Debian's build has no Kubernetes discovery: check everything else with it.
        doc = load(PROMETHEUS_YML)
        doc["scrape_configs"] = [j for j in doc["scrape_configs"]
                                 if "kubernetes_sd_configs" not in j]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
        done = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                              capture_output=True, text=True, timeout=120)
        said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "SUCCESS" in said


# ---------------------------------------------------------------- the docs


def test_the_docs_say_what_each_capability_and_mount_is_for():
    docs = DOCS.read_text()
    for cap in UNIT_CAPS | {"CAP_" + c for c in POD_CAPS} | {"CAP_SYS_ADMIN"}:
        assert f"`{cap}`" in docs, cap
    for path in HOST_MOUNTS:
        assert f"`{path}`" in docs, path
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()
