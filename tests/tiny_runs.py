"""The tiny training runs the engine, DDP, compile, resume and fine-tuning tests share: PSPNet-r18
at 64² on the CPU, a few iterations (``tiny_config(data, out, iters=6, section__key=value)``)."""

from trainer.config import RunConfig


def tiny_config(data, out, **over) -> RunConfig:
    cfg = RunConfig()
    cfg.data.path = str(data)
    cfg.data.size = 64
    cfg.model.name = over.pop("model", "pspnet")
    cfg.model.encoder = over.pop("encoder", "resnet18" if cfg.model.name != "hrnet18" else None)
    cfg.train.iters = over.pop("iters", 6)
    cfg.train.batch_size = 2
    cfg.train.val_every = over.pop("val_every", 3)
    cfg.train.checkpoint_every = over.pop("checkpoint_every", 3)
    cfg.train.device = "cpu"
    cfg.train.out = str(out)
    cfg.loss.lambda_step = over.pop("lambda_step", 2)
    # the authors' stride-4 weighting trunk costs ~2 s an iteration at 64² on 2 cores; the engine's
    # behaviour does not depend on it (tests/trainer/test_reweighting.py covers that architecture)
    cfg.loss.weight_stride = 8
    for k, v in over.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    return cfg
