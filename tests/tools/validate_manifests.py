"""Validate Kubernetes manifests offline, strictly (unknown fields are errors).

    validate_manifests.py [--kubernetes-version V] FILE...

Core kinds are checked against the Kubernetes JSON schemas shipped inside
the `kubernetes-validate` package; the Prometheus Operator's ServiceMonitor
against the `cloudcoil.models.prometheus_operator` types, where a field the
types do not know counts as an error too. A kind neither knows is an error.
Prints one line per document (`ok FILE KIND/NAME` or `error FILE KIND/NAME:
REASON`) and exits 1 if any failed. Installed by scripts/setup into the
project's virtualenv; the test suite runs it (tests/tests/deploy.rs).
"""

import argparse
import sys

import kubernetes_validate
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1

OPERATOR_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring_v1.ServiceMonitor,
}


def strip_unknown_check(model, document):
    """Validate with the model and report fields it dropped as unknown."""
    parsed = model.model_validate(document)
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = []
    diff(document, kept, "", unknown)
    if unknown:
        raise ValueError("unknown field(s): " + ", ".join(unknown))


def diff(given, kept, path, unknown):
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                unknown.append(where)
            else:
                diff(value, kept[key], where, unknown)
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(given, kept)):
            diff(a, b, f"{path}[{i}]", unknown)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubernetes-version", default="1.37.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failed = False
    for name in args.files:
        with open(name) as f:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        for document in documents:
            kind = document.get("kind", "?")
            what = f"{kind}/{document.get('metadata', {}).get('name', '?')}"
            try:
                model = OPERATOR_KINDS.get((document.get("apiVersion"), kind))
                if model is not None:
                    strip_unknown_check(model, document)
                else:
                    kubernetes_validate.validate(
                        document, args.kubernetes_version, strict=True
                    )
            except Exception as error:  # every validator's error is a report line
                failed = True
                message = getattr(error, "message", None) or str(error)
                print(f"error {name} {what}: {message}".replace("\n", " "))
            else:
                print(f"ok {name} {what}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
