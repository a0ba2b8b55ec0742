"""A terminal progress bar (tqdm) as a trainer listener; used only when stderr is a terminal."""

from __future__ import annotations

from tqdm import tqdm


class ProgressBar:
    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.last_step = 0

    def on_train_start(self, trainer) -> None:
        total = trainer.config.train.epochs * trainer.batches_per_epoch
        self.bar = tqdm(total=total, initial=trainer.step, unit="batch", dynamic_ncols=True)
        self.last_step = trainer.step

    def on_step(self, trainer, event) -> None:
        if self.bar is not None:
            self.bar.update(event.step - self.last_step)
            self.last_step = event.step
            self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.2f}", refresh=False)

    def on_epoch_end(self, trainer, event) -> None:
        if self.bar is not None:
            self.bar.update(trainer.step - self.last_step)
            self.last_step = trainer.step
            self.bar.write(f"epoch {event.epoch}: train ppl {event.train_ppl:.1f}, valid ppl {event.valid_ppl:.1f}")

    def on_test(self, trainer, event) -> None:
        if self.bar is not None:
            self.bar.close()
