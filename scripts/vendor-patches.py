#!/usr/bin/env python3
"""The Pingora patch queue: vendor/ rebuilt from the crates.io sources and vendor/patches/.

  vendor-patches.py check
      Unpacks the registry's .crate files of the vendored crates (checked against
      vendor/patches/SHA256SUMS), deletes the paths listed in vendor/patches/removed, applies
      vendor/patches/NNNN-*.patch in order and compares the result with vendor/. Any
      difference fails the check and is printed as a patch of the queue's form: a change made
      in vendor/ belongs in the patch it extends, or in a new one.
  vendor-patches.py refresh X.Y.Z
      The same on Pingora X.Y.Z, reporting for every patch whether it applies as it is, only
      at other lines or with fuzz, or not at all (the partly patched tree and its .rej files
      are kept under the work folder). When every patch applies, the vendored crates are
      replaced by the result, each patch's diff is rewritten against X.Y.Z (its header kept)
      and SHA256SUMS records the new sources; vendor/ is left alone otherwise.
  vendor-patches.py diff OLD NEW
      Prints the difference of two trees in the queue's form.

The .crate files are downloaded by cargo (`cargo fetch` of a throw-away manifest that depends
on the crates) and kept under $CARGO_TARGET_DIR/vendor-patches (target/ by default).
Needs cargo, GNU patch and diff.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "vendor"
PATCHES = VENDOR / "patches"
CRATES = ["pingora-core", "pingora-http", "pingora-proxy", "pingora-timeout"]
WORK = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").resolve() / "vendor-patches"


def say(msg):
    print(f"vendor-patches: {msg}", flush=True)


def die(msg):
    print(f"vendor-patches: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def recorded_sums():
    """{file name: sha256} from SHA256SUMS (`sha256sum` format)."""
    sums = {}
    for line in (PATCHES / "SHA256SUMS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split()
            sums[name.lstrip("*")] = digest
    return sums


def recorded_version():
    versions = {re.fullmatch(r"(.+)-(\d+\.\d+\.\d+.*)\.crate", n).group(2) for n in recorded_sums()}
    if len(versions) != 1:
        die(f"SHA256SUMS names several versions: {sorted(versions)}")
    return versions.pop()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(version):
    """The crates' .crate files for `version`, downloaded by cargo when not cached yet."""
    cache = WORK / "crates"
    cache.mkdir(parents=True, exist_ok=True)
    files = {c: cache / f"{c}-{version}.crate" for c in CRATES}
    if all(f.exists() for f in files.values()):
        return files
    project = WORK / f"fetch-{version}"
    shutil.rmtree(project, ignore_errors=True)
    (project / "src").mkdir(parents=True)
    (project / "src" / "lib.rs").write_text("")
    deps = "".join(f'{c} = "={version}"\n' for c in CRATES)
    # Its own workspace: the folder is inside pinlb's.
    (project / "Cargo.toml").write_text(
        '[package]\nname = "pingora-vendor-fetch"\nversion = "0.0.0"\nedition = "2021"\n'
        f"publish = false\n\n[dependencies]\n{deps}\n[workspace]\n"
    )
    # pinlb's lock file as a starting point: most of the graph is then already downloaded.
    shutil.copy(ROOT / "Cargo.lock", project / "Cargo.lock")
    host = re.search(r"^host: (\S+)", subprocess.check_output(["rustc", "-vV"], text=True), re.M)
    say(f"downloading the {version} sources with cargo")
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    subprocess.run(["cargo", "fetch", "--quiet", "--target", host.group(1)], cwd=project, env=env, check=True)
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    for crate, dest in files.items():
        found = sorted(cargo_home.glob(f"registry/cache/*/{crate}-{version}.crate"))
        if not found:
            die(f"cargo fetched no {crate}-{version}.crate under {cargo_home}/registry/cache")
        shutil.copy(found[0], dest)
    shutil.rmtree(project)
    return files


def unpack(files, version, tree):
    """The crates' sources as published, less the paths listed in vendor/patches/removed."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for crate, path in files.items():
        with tarfile.open(path) as tar:
            # The "data" filter where this Python has it (3.11.4 and later).
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tree, **kw)
        (tree / f"{crate}-{version}").rename(tree / crate)
    for line in (PATCHES / "removed").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        for p in sorted(tree.glob(pattern)):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def queue():
    return sorted(PATCHES.glob("[0-9][0-9][0-9][0-9]-*.patch"))


def apply(patch, tree, fuzz=0, dry_run=False, rejects=False):
    cmd = ["patch", "-p1", "-f", "--no-backup-if-mismatch", f"--fuzz={fuzz}", "-d", str(tree), "-i", str(patch)]
    if dry_run:
        cmd.append("--dry-run")
    if not rejects:
        cmd += ["-r", "-"]
    return subprocess.run(cmd, capture_output=True, text=True)


def files_of(tree):
    return {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() or p.is_symlink()}


def diff(old, new, only=None):
    """The difference of two trees as a patch for `patch -p1` in their parent."""
    out = []
    names = files_of(old) | files_of(new)
    for name in sorted(n for n in names if only is None or n.split("/")[0] in only):
        a, b = old / name, new / name
        args = [
            "diff", "-U3", "-p",
            "--label", f"a/{name}" if a.exists() else "/dev/null",
            "--label", f"b/{name}" if b.exists() else "/dev/null",
            str(a) if a.exists() else "/dev/null",
            str(b) if b.exists() else "/dev/null",
        ]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode > 1:
            die(f"diff failed on {name}: {r.stderr}")
        out.append(r.stdout)
    return "".join(out)


def split_patch(text):
    """(header, diff) of a patch file: the diff starts at its first `--- ` line."""
    m = re.search(r"^--- ", text, re.M)
    return (text[: m.start()], text[m.start():]) if m else (text, "")


def check():
    version = recorded_version()
    files = fetch(version)
    sums = recorded_sums()
    for crate, path in files.items():
        if sha256(path) != sums.get(path.name):
            die(f"{path.name}: sha256 {sha256(path)} is not the one in vendor/patches/SHA256SUMS")
    tree = WORK / "check"
    unpack(files, version, tree)
    for patch in queue():
        r = apply(patch, tree)
        if r.returncode != 0:
            die(f"{patch.name} does not apply to the sources and the patches before it:\n{r.stdout}{r.stderr}")
    extra = sorted(p.name for p in VENDOR.iterdir() if p.is_dir() and p.name not in CRATES + ["patches"])
    if extra:
        die(f"vendor/ holds folders that are not vendored crates: {extra}")
    difference = diff(tree, VENDOR, only=CRATES)
    if difference:
        sys.stdout.write(difference)
        die(
            f"vendor/ differs from the {version} sources plus vendor/patches (the difference is above, "
            "as a patch): put the change in the patch it belongs to, or in a new one"
        )
    say(f"vendor/ is the crates.io {version} sources of {', '.join(CRATES)} plus {len(queue())} patches")


def refresh(version):
    files = fetch(version)
    work = WORK / f"refresh-{version}"
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "tree"
    unpack(files, version, tree)
    states = [work / "state-0000"]
    shutil.copytree(tree, states[0], symlinks=True)
    report, failed = [], []
    for patch in queue():
        exact = apply(patch, tree, dry_run=True)
        fuzzy = exact if exact.returncode == 0 else apply(patch, tree, fuzz=2, dry_run=True)
        if exact.returncode == 0 and "offset" not in exact.stdout:
            status = "applies"
        elif exact.returncode == 0:
            status = "applies at other lines"
        elif fuzzy.returncode == 0:
            status = "applies with fuzz (context changed: review it)"
        else:
            status = "DOES NOT APPLY"
            failed.append(patch.name)
        r = apply(patch, tree, fuzz=2, rejects=True)
        if status == "DOES NOT APPLY":
            rejected = [line for line in r.stdout.splitlines() if "FAILED" in line or "saving rejects" in line]
            status += "".join(f"\n        {line}" for line in rejected)
        report.append(f"  {patch.name}: {status}")
        state = work / f"state-{patch.name[:4]}"
        shutil.copytree(tree, state, symlinks=True)
        states.append(state)
    say(f"the queue on Pingora {version}:\n" + "\n".join(report))
    if failed:
        die(
            f"{len(failed)} of {len(queue())} patches do not apply; vendor/ is unchanged. The partly "
            f"patched tree, with .rej files, is {tree}; the tree after each patch is {work}/state-NNNN."
        )
    for patch, old, new in zip(queue(), states, states[1:]):
        header, _ = split_patch(patch.read_text())
        patch.write_text(header + diff(old, new))
    for crate in CRATES:
        shutil.rmtree(VENDOR / crate)
        shutil.copytree(tree / crate, VENDOR / crate, symlinks=True)
    sums = "".join(f"{sha256(path)}  {path.name}\n" for path in files.values())
    (PATCHES / "SHA256SUMS").write_text(
        "# sha256 of the crates.io sources the patches apply to (`make vendor-check` checks them).\n" + sums
    )
    say(
        f"vendor/ is now Pingora {version} plus the queue, the patches' diffs are rewritten against it\n"
        f"  and SHA256SUMS records the {version} sources (cargo checked them against the registry index).\n"
        f"  Next: pin pingora = \"={version}\" in Cargo.toml, `cargo update -p pingora`, review each\n"
        "  patch's header (line numbers, measurements), then `make vendor-check test`."
    )


def main(argv):
    if argv[:1] == ["check"] and len(argv) == 1:
        check()
    elif argv[:1] == ["refresh"] and len(argv) == 2 and re.fullmatch(r"\d+\.\d+\.\d+\S*", argv[1]):
        refresh(argv[1])
    elif argv[:1] == ["diff"] and len(argv) == 3:
        sys.stdout.write(diff(Path(argv[1]), Path(argv[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
