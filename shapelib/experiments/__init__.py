"""The reproduction layer: each paper's protocols, checkpoints, scores and REPORT rows.

The methods (``shapelib.diffusion``, ``fmaps``, ``meps``, ``cpnet``, ``implicit``) know nothing of
checkpoints or reports; this package does, one file per paper:

    registry      Protocol, register, get, load_model (imports no paper file; finds them on demand)
    runner        train / resume / re-evaluate / evaluate a saved state; `python -m shapelib.experiments`
    distributed   data-parallel training under torchrun (`make train MODEL=... NPROC=k`)
    checkpoints   weights + typed training Record (results/checkpoints/NAME.pt + NAME.json)
    scoring       pair scoring, mirror share, failure anatomy, the one summary-statistics helper
    report        results tables, REPORT.md assembly, row replacement
    reproduce     executes the notebooks (`make reproduce`)
    diffusionnet  DiffusionNet Table 5 (+ graph baseline), Fig. 5, the rotation sweep
    diffusionnet_fmaps  DiffusionNet Table 4 with the authors' published weights
    meps          MEPS / FeaStNet Table 1
    fmaps         scalable / differentiable ZoomOut Table 1: protocols, trained rows, learning curves
    fmaps_axiomatic  the 190-pair axiomatic ZoomOut run, next to pyFM
    cpnet         CPNet on KeypointNet chairs (where present)
    implicit      DIFM Table 1 (chair) on the part-labelled real chairs
"""
