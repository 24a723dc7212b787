#!/usr/bin/env bash
# Proves that another package can depend on hrtem's libraries BY VERSION, the way a user would
# (`.package(url:..., from: ...)`). SwiftPM refuses a versioned dependency whose targets use
# `unsafeFlags`, and only a package that depends on hrtem by version sees that refusal: hrtem's
# own builds never do. So this snapshots the working tree (tracked files plus new, unignored
# ones) into a git repository, tags it, builds a small downstream package that uses the
# Micrograph and Catalog products, and runs it.
#
# Everything lives under WORK (default .build-downstream, git-ignored) and is made afresh each
# run. Other dependencies (GRDB, ...) resolve exactly as hrtem's own do; nothing is installed.
# Debug build of the downstream and only what it needs, to keep `make test` short.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${WORK:-$root/.build-downstream}"
swift="${SWIFT:-swift}"
version="0.0.1-test"

rm -rf "$work"
mkdir -p "$work/hrtem" "$work/downstream/Sources/downstream"

# The snapshot: what `git ls-files` knows (tracked and untracked-unignored), as it is on disk.
(cd "$root" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$root" && tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) \
  | tar -xf - -C "$work/hrtem"
git -C "$work/hrtem" init -q
git -C "$work/hrtem" add -A
git -C "$work/hrtem" -c user.name=hrtem-check -c user.email=check@hrtem.invalid \
  commit -q -m "snapshot for the downstream check"
git -C "$work/hrtem" tag "$version"

cat > "$work/downstream/Package.swift" <<EOF
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "downstream",
    dependencies: [.package(url: "file://$work/hrtem", from: "$version")],
    targets: [
        .executableTarget(name: "downstream", dependencies: [
            .product(name: "Micrograph", package: "hrtem"),
            .product(name: "Catalog", package: "hrtem"),
        ]),
    ]
)
EOF

cat > "$work/downstream/Sources/downstream/main.swift" <<'EOF'
import Catalog
import Micrograph

let hasher = SHA256Hasher()
hasher.update(Array("hrtem".utf8))
let query = try FrameQuery.parse("material = \"Ag\" and size = 5")
print("micrograph \(hrtemVersion) sha256(hrtem)=\(hasher.finalizeHex())")
print("catalog where \(try query.compile().sql)")
EOF

cd "$work/downstream"
if ! "$swift" build --product downstream > "$work/build.log" 2>&1; then
  cat "$work/build.log"
  echo "downstream: FAILED: a package depending on hrtem $version by version does not build (log above)"
  exit 1
fi
output="$(.build/debug/downstream)"
echo "$output"
expected="sha256(hrtem)=$(printf hrtem | sha256sum | cut -d' ' -f1)"
if ! grep -qF "$expected" <<<"$output" || ! grep -q '^catalog where .*material' <<<"$output"; then
  echo "downstream: FAILED: the downstream program printed something unexpected (wanted $expected)"
  exit 1
fi
echo "downstream: ok (a package depending on hrtem from: $version builds and runs)"
