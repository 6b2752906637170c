"""Static checks of docker-compose.yml, for machines without Docker.

Run with the LocalStack venv's python (it has PyYAML):
    "$CHARGEFLOW_VENV/bin/python" scripts/check_compose.py [path/to/docker-compose.yml]

Checks that every service has an image or a build; that each build names, in its APP build arg,
a folder apps/<APP> whose Cargo.toml package is called APP (and that its context and Dockerfile
exist); that every bind-mounted host path exists inside the repository; that every depends_on
names a defined service; that web-server publishes port 3000; that the web-server and the
email-service get an APP__SHOP__LINK_SECRET of at least 32 bytes (they refuse to start
without); and that every process of the pipeline runs with APP__PROFILE=local (this stack's fixed
secrets and fakes are refused under production, the default). Prints one `ok …`/`FAIL …` line per check, then `N passed, M failed`; exits 1 if any
check failed.
"""

import os
import re
import sys
import tomllib

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, message):
        print(f"{'ok' if ok else 'FAIL'} {message}")
        if ok:
            self.passed += 1
        else:
            self.failed += 1


def build_args(build):
    """The build args as a dict, from the mapping or the list (`KEY=value`) form."""
    args = (build.get("args") or {}) if isinstance(build, dict) else {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) if "=" in item else (item, None) for item in args)
    return args


def package_name(cargo_toml):
    with open(cargo_toml, "rb") as fh:
        return tomllib.load(fh).get("package", {}).get("name")


def check_build(report, base, name, build):
    context = build if isinstance(build, str) else build.get("context", ".")
    context_dir = os.path.normpath(os.path.join(base, context))
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    report.check(
        os.path.isfile(os.path.join(context_dir, dockerfile)),
        f"{name}: build context {context!r} has {dockerfile}",
    )
    app = build_args(build).get("APP")
    if not app:
        report.check(False, f"{name}: build has an APP build arg")
        return
    cargo_toml = os.path.join(context_dir, "apps", app, "Cargo.toml")
    if not os.path.isfile(cargo_toml):
        report.check(False, f"{name}: APP={app} but apps/{app}/Cargo.toml does not exist")
        return
    found = package_name(cargo_toml)
    report.check(found == app, f"{name}: apps/{app}/Cargo.toml names package {found!r} (APP={app})")


def bind_sources(volumes):
    """Host paths of bind mounts (short `src:dst[:mode]` or long `type: bind` syntax)."""
    for volume in volumes or []:
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume.get("source", "")
            continue
        source = str(volume).split(":", 1)[0]
        if source.startswith((".", "/", "~")):  # otherwise a named volume
            yield source


def check_mounts(report, base, name, service):
    for source in bind_sources(service.get("volumes")):
        path = os.path.realpath(os.path.join(base, os.path.expanduser(source)))
        inside = path == REPO_ROOT or path.startswith(REPO_ROOT + os.sep)
        report.check(
            inside and os.path.exists(path),
            f"{name}: mounted host path {source} exists in the repository",
        )


def check_depends(report, name, service, defined):
    depends = service.get("depends_on") or []
    for dependency in depends if isinstance(depends, list) else depends.keys():
        report.check(dependency in defined, f"{name}: depends_on {dependency} is a defined service")


def published_ports(service):
    """Host ports a service publishes (short `[ip:]host:container[/proto]` or long syntax)."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                yield str(port["published"])
            continue
        parts = str(port).split("/", 1)[0].split(":")
        yield parts[-2] if len(parts) >= 2 else parts[-1]


# The processes that sign or check order and sign-in links, and the shortest secret they accept.
LINK_SECRET_USERS = ("web-server", "email-service")
MIN_LINK_SECRET_LEN = 32


def environment(service):
    """A service's environment as a dict (map or `KEY=value` list syntax)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return env


def interpolate(value):
    """`${VAR:-default}` / `${VAR-default}` / `${VAR}` as compose resolves them here."""

    def resolve(match):
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        found = os.environ.get(name)
        if op == ":-":
            return found or default
        if op == "-":
            return default if found is None else found
        return found or ""

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", resolve, value)


# The processes that check their settings against APP__PROFILE at start-up.
PIPELINE = (
    "web-server",
    "outbox-relay",
    "invoice-service",
    "billing-service",
    "shipping-service",
    "email-service",
)


def check_profile(report, name, service):
    profile = interpolate(str(environment(service).get("APP__PROFILE") or ""))
    report.check(profile == "local", f"{name}: runs with APP__PROFILE=local")


def check_link_secret(report, name, service):
    secret = interpolate(str(environment(service).get("APP__SHOP__LINK_SECRET") or ""))
    report.check(
        len(secret.encode()) >= MIN_LINK_SECRET_LEN,
        f"{name}: APP__SHOP__LINK_SECRET has at least {MIN_LINK_SECRET_LEN} bytes",
    )


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO_ROOT, "docker-compose.yml")
    base = os.path.dirname(os.path.abspath(path))
    report = Report()
    with open(path, encoding="utf-8") as fh:
        services = (yaml.safe_load(fh) or {}).get("services") or {}
    report.check(bool(services), f"{os.path.basename(path)} defines services: {', '.join(services)}")
    for name, service in services.items():
        service = service or {}
        report.check("image" in service or "build" in service, f"{name}: has an image or a build")
        if "build" in service:
            check_build(report, base, name, service["build"])
        check_mounts(report, base, name, service)
        check_depends(report, name, service, services)
    web = services.get("web-server") or {}
    report.check("3000" in set(published_ports(web)), "web-server: publishes port 3000")
    for name in LINK_SECRET_USERS:
        check_link_secret(report, name, services.get(name) or {})
    for name in PIPELINE:
        check_profile(report, name, services.get(name) or {})
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
