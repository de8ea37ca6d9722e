"""The registry of real datasets: where each is looked for, its source, licence and layout.

Every dataset lives in its own folder under ``config.data_root()`` (``$SHAPELIB_DATA``,
default ``<repo>/data``). Nothing is ever downloaded implicitly: ``python -m shapelib.data
status`` shows what is found, ``python -m shapelib.data fetch NAME`` downloads what is openly
downloadable (with a progress bar and a sha256 check) and prints the manual steps for data
behind a licence or a registration.
"""
from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..config import data_root
from ..errors import DatasetNotFoundError


@dataclass(frozen=True)
class Download:
    """One openly downloadable file: ``url`` -> ``<dataset folder>/<filename>`` with ``sha256``."""

    url: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """A real dataset: ``name`` (its folder under the data root and its CLI name), ``title``,
    official ``url``, ``licence``, expected ``layout``, the ``required`` relative paths that must
    exist for `found`, the ``notebooks`` using it, how to obtain it (``manual``) and the openly
    downloadable files (``downloads``)."""

    name: str
    title: str
    url: str
    licence: str
    layout: str
    required: tuple
    manual: str
    notebooks: tuple = ()
    downloads: tuple = field(default_factory=tuple)
    present_here: bool = True  # False: documented and loadable, but no sample ships with CI

    def path(self) -> Path:
        """The folder searched: ``<data_root>/<name>``."""
        return data_root() / self.name

    def missing(self) -> list[str]:
        """The required paths that are absent, empty or of the wrong kind (a folder with no file in
        it counts as missing: an unpacked-but-empty archive would otherwise give loaders zero
        shapes). A required entry ending in ``/`` must be a folder (``''``: the dataset folder
        itself), an entry whose name has a suffix (``cat0.off``) a file: a file in place of
        ``vtx_5k/corres/`` used to count as found and gave items without ground truth."""
        out = []
        for r in self.required:
            p = self.path() / r
            folder = r.endswith("/") or r == ""
            shown = r.rstrip("/") or self.name
            if not p.exists():
                out.append(r or f"{self.name}/")
            elif folder and not p.is_dir():
                out.append(f"{shown} (a file where a folder is expected)")
            elif not folder and p.is_dir() and "." in r.rsplit("/", 1)[-1]:
                out.append(f"{shown} (a folder where a file is expected)")
            elif p.is_dir() and not any(q.is_file() for q in p.rglob("*")):
                out.append(f"{shown}/ (empty folder)")
        return out

    def damaged(self) -> list[str]:
        """The required paths of the wrong kind (a file where a folder is expected, or the reverse)."""
        return [m for m in self.missing() if m.endswith("is expected)")]

    def found(self) -> bool:
        """True when every required file/folder exists under `path` (folders not empty)."""
        return not self.missing()

    def status(self) -> str:
        """``'found'``, ``'missing'``, ``'empty'`` (folders present but holding no file) or
        ``'damaged'`` (a required path is a file where a folder is expected, or the reverse)."""
        miss = self.missing()
        if not miss:
            return "found"
        if any(m.endswith("is expected)") for m in miss):
            return "damaged"
        return "empty" if all(m.endswith("(empty folder)") for m in miss) else "missing"

    def require(self) -> Path:
        """The dataset folder, or raise `DatasetNotFoundError` naming the path and the fix."""
        missing = self.missing()
        if self.damaged():
            raise DatasetNotFoundError(
                f"Dataset {self.name!r} ({self.title}) in {self.path()} is damaged: {', '.join(self.damaged())}. "
                "Fix: move the wrong entry away and restore the dataset's layout "
                f"({self.layout}); `python -m shapelib.data fetch {self.name}` says how to obtain it.")
        if missing:
            raise DatasetNotFoundError(
                f"Dataset {self.name!r} ({self.title}) not found: looked in {self.path()} "
                f"(missing: {', '.join(missing)}). Fix: set SHAPELIB_DATA to the folder that contains "
                f"'{self.name}/', or run `python -m shapelib.data fetch {self.name}` for how to obtain it "
                f"(see data/README.md). To run without it, use source='synthetic'."
            )
        return self.path()


_PYFM = "https://raw.githubusercontent.com/RobinMagnet/pyFM/master/examples/data/"
_R_LAYOUT = "vtx_5k/<shape>.off, vtx_5k/corres/<shape>.vts (1-based, row i ↔ row i), [corres/sampleID.vts], test_pairs.txt"
_REN = ("Remeshed (~5k vertices) by Ren et al. 2018 (BCICP, https://github.com/llorz/SGA18_orientation_BCICP_code); "
        "also redistributed with GeomFmaps (https://github.com/LIX-shape-analysis/GeomFmaps). Download the "
        "archive by hand (the original licence applies) and unpack it to {path}.")

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo(
        "faust_registrations", "FAUST training registrations (Bogo et al. 2014)",
        "https://faust-leaderboard.is.tuebingen.mpg.de/",
        "MPI FAUST licence: non-commercial research only; registration required; do not redistribute.",
        "tr_reg_000.ply … tr_reg_099.ply (6,890 vertices, shared connectivity)", ("tr_reg_000.ply", "tr_reg_099.ply"),
        "Register on the FAUST website, accept the licence, download MPI-FAUST.zip and copy "
        "training/registrations/tr_reg_*.ply to {path}.", ("00_data", "MEPS/DiffusionNet vertex labelling")),
    DatasetInfo(
        "faust_remeshed_test", "FAUST test shapes re-discretised (DiffusionNet, Sharp et al. 2022, Table 5)",
        "https://github.com/nmwsharp/diffusion-net",
        "Derived from FAUST: MPI FAUST licence (non-commercial research).",
        "{iso,qes,mc,dense,cloud}/tr_reg_<kind>_0XX.ply + .txt (0-based template vertex per vertex)",
        ("iso/", "dense/", "qes/", "cloud/"),
        "Obtain the re-meshed FAUST test set released with DiffusionNet (see its repository) after "
        "accepting the FAUST licence, and unpack the five folders into {path}.", ("00_data", "DiffusionNet Table 5")),
    DatasetInfo(
        "faust_r", "FAUST_r: FAUST remeshed to ~5k vertices", "https://github.com/llorz/SGA18_orientation_BCICP_code",
        "Derived from FAUST: MPI FAUST licence (non-commercial research).", _R_LAYOUT,
        ("vtx_5k/", "vtx_5k/corres/"), _REN, ("00_data", "functional maps / deep functional maps")),
    DatasetInfo(
        "scape_r", "SCAPE_r: SCAPE remeshed to ~5k vertices (Anguelov et al. 2005)",
        "https://github.com/llorz/SGA18_orientation_BCICP_code",
        "SCAPE: free for research use (Stanford); cite Anguelov et al. 2005.", _R_LAYOUT,
        ("vtx_5k/", "vtx_5k/corres/"), _REN, ("functional maps",), present_here=False),
    DatasetInfo(
        "shrec19_r", "SHREC'19_r: SHREC'19 connectivity track remeshed (Melzi et al. 2019)",
        "https://github.com/llorz/SGA18_orientation_BCICP_code",
        "Research use; cite Melzi et al. 2019 (SHREC'19: matching humans with different connectivity).", _R_LAYOUT,
        ("vtx_5k/",), _REN, ("functional maps (generalisation)",), present_here=False),
    DatasetInfo(
        "tosca_r", "TOSCA remeshed (Bronstein et al. 2008; Ren et al. 2018)", "http://tosca.cs.technion.ac.il/",
        "Academic use; cite Bronstein, Bronstein & Kimmel, 'Numerical geometry of non-rigid shapes', 2008.",
        "<class><k>.off, corres/<class><k>.vts (1-based), landmarks_hires/<class>0.off + <class>.pid/.info, test_pairs.txt",
        ("cat0.off", "corres/"), _REN.replace("{path}", "{path} (and the original TOSCA hi-res meshes + landmarks "
                                              "from the TOSCA page into {path}/landmarks_hires)"),
        ("00_data", "functional maps (non-isometric: cat↔dog, horse↔centaur)")),
    DatasetInfo(
        "tosca_pyfm", "TOSCA cat/lion pair with a ground-truth map (pyFM example data)",
        "https://github.com/RobinMagnet/pyFM", "TOSCA academic use (meshes); pyFM MIT (landmarks, map).",
        "cat-00.off, lion-00.off, landmarks.txt (cat lion, 0-based), lion2cat (0-based cat vertex per lion vertex)",
        ("cat-00.off", "lion-00.off", "lion2cat"), "Run `python -m shapelib.data fetch tosca_pyfm` (open download).",
        ("00_data", "functional maps"),
        downloads=(Download(_PYFM + "cat-00.off", "cat-00.off", "359d02a6b59a74a12eee396717d66169ae6375954c756a26f54b957881619016"),
                   Download(_PYFM + "landmarks.txt", "landmarks.txt", "d20b165381bb8f75afd03197fc93c92a260afad806ce60c5cc5e76d94fc5c3d2"),
                   Download(_PYFM + "lion-00.off", "lion-00.off", "e2399470274687aaa317e3ccf546e11a13392a7f6058648494875d07ee3d644f"),
                   Download(_PYFM + "lion2cat", "lion2cat", "d705e0748d1dfc4dab90aa3060e44d05b4769598888a25eda4d5f0798d37ab3c"))),
    DatasetInfo(
        "keypointnet_sample", "KeypointNet keypoint annotations (You et al. 2020)", "https://github.com/qq456cvb/KeypointNet",
        "Annotations: MIT licence; geometry: ShapeNet terms of use (registration at shapenet.org).",
        "annotations/<category>.json, splits/{train,val,test}.txt, models/<class>/<model>/models/model_normalized.{obj,ply}, pcds/<class>/<model>.pcd",
        ("annotations/",), "Download KeypointNet (annotations, splits, pcds) following its README and the ShapeNetCore.v2 "
        "models after registering at shapenet.org; place them under {path} with the layout above.",
        ("00_data", "CPNet keypoint correspondence")),
    DatasetInfo(
        "keypointnet", "KeypointNet, official layout (You et al. 2020): clouds with keypoints, splits",
        "https://github.com/qq456cvb/KeypointNet",
        "Annotations: MIT licence; geometry: ShapeNet terms of use (registration at shapenet.org).",
        "annotations/<category>.json, splits/{train,val,test}.txt ('<class_id>-<model_id>'), "
        "pcds/<class_id>/<model_id>.pcd (2,048 points, FIELDS x y z [rgb]; keypoints index them)",
        ("annotations/", "splits/train.txt", "splits/val.txt", "splits/test.txt", "pcds/"),
        "Download KeypointNet (annotations/, splits/, pcds/) following https://github.com/qq456cvb/KeypointNet "
        "and unpack it to {path} with the layout above (loader: shapelib.data.keypointnet).",
        ("06 CPNet (paper protocol: shapelib.experiments.cpnet)",)),
    DatasetInfo(
        "shapenet_chairs", "ShapeNetCore.v2 chair meshes (Chang et al. 2015): 10 in the model_normalized frame, 15 re-exported",
        "https://shapenet.org/", "ShapeNet terms of use (non-commercial research and education; registration).",
        "v2_normalized/03001627/<id>/models/model_normalized.obj, deep_cage/03001627/<id>.obj (Neural Cages re-export)",
        ("v2_normalized/03001627/", "deep_cage/03001627/"),
        "Register at shapenet.org and download ShapeNetCore.v2; copy chairs (synset 03001627) as "
        "{path}/v2_normalized/03001627/<id>/models/model_normalized.obj. The re-exported chairs come from "
        "https://github.com/yifita/deep_cage (data/shapenet_target/<id>/model.obj -> {path}/deep_cage/03001627/<id>.obj).",
        ("00_data", "05 implicit feature matching", "06 CPNet")),
    DatasetInfo(
        "shapenetpart_cap", "ShapeNetPart point clouds with part labels (Yi et al. 2016), 'cap' sample",
        "https://shapenet.org/", "ShapeNet terms of use (non-commercial research).",
        "<category>_<split>_NN.npz with pos (n,3), normal (n,3), part_label (n,), category (n,)", ("cap_test_00.npz",),
        "Download ShapeNetPart (shapenetcore_partanno_segmentation_benchmark_v0_normal) after accepting the ShapeNet "
        "terms, and save clouds as npz (pos, normal, part_label, category) in {path}.", ("00_data", "part segmentation")),
    DatasetInfo(
        "shapenetpart_chair", "ShapeNetPart chairs with per-point part labels (Yi et al. 2016), 100 clouds",
        "https://shapenet.org/", "ShapeNet terms of use (non-commercial research).",
        "<model_id>.npz with pos (n,3) float32, part_label (n,) int64 (12 back, 13 seat, 14 leg, 15 arm); "
        "frame: centred, in the unit ball (see the folder's PROVENANCE.txt)", ("",),
        "Download ShapeNetPart (shapenetcore_partanno_segmentation_benchmark_v0_normal) after accepting the ShapeNet "
        "terms and save chair clouds (synset 03001627) as <model_id>.npz (pos, part_label) in {path}.",
        ("06 CPNet Table 3 (part-supervised embeddings)",)),
    DatasetInfo(
        "deformation_sequences", "Deformation-transfer sequences, e.g. camel / horse gallop (Sumner & Popović 2004)",
        "https://people.csail.mit.edu/sumner/research/deftransfer/data.html",
        "Research use; cite Sumner & Popović, 'Deformation transfer for triangle meshes', SIGGRAPH 2004.",
        "<sequence>/<frame>.obj (all frames of a sequence share connectivity)", ("",),
        "Download the sequences (e.g. camel-gallop, horse-gallop) from the page above and unpack each into "
        "{path}/<sequence>/ as .obj frames.", ("shape interpolation / vertex-label correspondence",), present_here=False),
)}


def get(name: str) -> DatasetInfo:
    """The `DatasetInfo` called ``name`` (raises ``KeyError`` listing the known names)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def status_table() -> str:
    """A text table: name, found/missing, path searched, how to obtain."""
    rows = [("dataset", "status", "path searched", "how to obtain")]
    for d in DATASETS.values():
        how = f"python -m shapelib.data fetch {d.name}" if d.downloads else f"manual: {d.url}"
        st = d.status()
        rows.append((d.name, f"{st}: {', '.join(d.damaged())}" if st == "damaged" else st, str(d.path()), how))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(url: str, dest: Path, timeout: float = 20.0) -> None:
    """Stream ``url`` into ``dest`` (via a temp file) with a tqdm progress bar."""

    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))
    tmp.replace(dest)


def fetch(name: str, echo=print) -> bool:
    """Download the openly downloadable files of ``name`` (sha256-checked) and print the manual
    steps otherwise. Never raises on network errors: returns False with a message instead."""
    d = get(name)
    if not d.downloads:
        echo(f"{d.name}: {d.title}\n  licence: {d.licence}\n  cannot be downloaded automatically.\n"
             f"  how to obtain: {d.manual.format(path=d.path())}\n  official page: {d.url}\n"
             f"  expected layout under {d.path()}: {d.layout}")
        return d.found()
    folder = d.path()
    ok = True
    for item in d.downloads:
        dest = folder / item.filename
        if dest.exists() and sha256(dest) == item.sha256:
            echo(f"{dest}: present, sha256 ok")
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _download(item.url, dest)
        except Exception as exc:  # no network, HTTP error, read-only folder...
            echo(f"could not download {item.url} ({type(exc).__name__}: {exc}).\n"
                 f"  No internet here? Download it by hand into {dest}, or set SHAPELIB_DATA to a folder "
                 f"that already holds '{d.name}/'. Everything in shapelib also runs on synthetic data.")
            return False
        digest = sha256(dest)
        if digest != item.sha256:
            dest.unlink()
            echo(f"{dest}: sha256 mismatch (got {digest}, expected {item.sha256}); file removed. "
                 "The upstream file changed or the download was corrupted: retry, or obtain it by hand.")
            ok = False
        else:
            echo(f"{dest}: downloaded, sha256 ok")
    return ok and d.found()
