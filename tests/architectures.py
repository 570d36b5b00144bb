"""Audio model architectures that are NOT audioprune's: defined here, outside the registry, not
subclassing AudioClassifier, each with a different pruning difficulty (residual adds, depthwise
and grouped convs, squeeze-excitation, Conv1d on waveforms, attention pooling, a frozen conv
front end, a dict output, quaternion layers). Small enough to prune in a test."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from audioprune.nn import QBatchNorm2d, QConv2d


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class ResBlock(nn.Module):
    """ResNet basic block; a 1x1 projection when the shape changes (PANNs ResNet38 style)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.down(x))


class TinyResNet(nn.Module):
    """Log-mel (B, 1, T, F) -> stem -> 3 residual blocks (adds) -> pool -> fc."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(1, 24)
        self.layer1 = ResBlock(24, 24)
        self.layer2 = ResBlock(24, 48, stride=2)
        self.layer3 = ResBlock(48, 48)
        self.fc = nn.Linear(48, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // r, 4), 1)
        self.fc2 = nn.Conv2d(max(c // r, 4), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))
        return x * F.hardsigmoid(self.fc2(s))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand, 3x3 depthwise, squeeze-excitation, 1x1 project, add."""

    def __init__(self, c_in: int, c_out: int, expand: int, stride: int = 1) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = nn.Sequential(nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                    nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden,
                                                 bias=False), nn.BatchNorm2d(hidden), nn.Hardswish())
        self.se = SqueezeExcite(hidden)
        self.project = nn.Sequential(nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class TinyMobileNet(nn.Module):
    """EfficientAT-style MobileNetV3 on log-mels: stem, inverted residuals with SE, 1x1 head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 4), InvertedResidual(16, 24, 4, 2),
                                    InvertedResidual(24, 24, 3))
        self.head = nn.Sequential(nn.Conv2d(24, 64, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.Hardswish())
        self.classifier = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))


class GroupedConvNet(nn.Module):
    """ResNeXt-like grouped convolutions (groups=4) between dense ones."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = conv_bn(1, 32)
        self.conv2 = conv_bn(32, 64, groups=4)
        self.conv3 = conv_bn(64, 64, groups=4)
        self.conv4 = conv_bn(64, 32)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.fc(x.amax(dim=(2, 3)))


class WaveNet1d(nn.Module):
    """A Conv1d network on raw waveforms (B, 1, samples), as ACDNet / M5."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, 32, 80, stride=4), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(32, 32, 3), nn.BatchNorm1d(32), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(32, 64, 3), nn.BatchNorm1d(64), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(64, 64, 3), nn.BatchNorm1d(64), nn.ReLU())
        self.fc = nn.Linear(64, classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(wave).mean(dim=-1))


class AttentionPoolNet(nn.Module):
    """Conv body, then PANNs' attention pooling head: per-frame class logits weighted by a
    softmax attention over time (Conv1d att / cla), summed."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = conv_bn(1, 32)
        self.conv2 = conv_bn(32, 64)
        self.fc1 = nn.Conv1d(64, 64, 1)
        self.att = nn.Conv1d(64, classes, 1)
        self.cla = nn.Conv1d(64, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(F.max_pool2d(self.conv1(x), 2)).mean(dim=3)  # (B, C, T)
        x = F.relu(self.fc1(x))
        weights = torch.softmax(torch.tanh(self.att(x)), dim=-1)
        return (weights * self.cla(x)).sum(dim=-1)


class FrozenFrontEndNet(nn.Module):
    """A frozen conv front end (an STFT as a strided Conv1d with fixed Fourier kernels,
    requires_grad=False, as torchlibrosa implements it) feeding 2-D convs."""

    def __init__(self, classes: int = 10, n_fft: int = 64, hop: int = 32) -> None:
        super().__init__()
        t = torch.arange(n_fft, dtype=torch.float32)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float32)[:, None]
        window = torch.hann_window(n_fft, periodic=True)
        self.stft_real = nn.Conv1d(1, n_fft // 2 + 1, n_fft, hop, bias=False)
        self.stft_imag = nn.Conv1d(1, n_fft // 2 + 1, n_fft, hop, bias=False)
        with torch.no_grad():
            self.stft_real.weight.copy_((torch.cos(2 * math.pi * k * t / n_fft) * window)[:, None])
            self.stft_imag.weight.copy_((-torch.sin(2 * math.pi * k * t / n_fft) * window)[:, None])
        for p in (*self.stft_real.parameters(), *self.stft_imag.parameters()):
            p.requires_grad_(False)
        self.body = nn.Sequential(conv_bn(1, 32), nn.MaxPool2d(2), conv_bn(32, 48), conv_bn(48, 48))
        self.fc = nn.Linear(48, classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, None, :]
        power = self.stft_real(x) ** 2 + self.stft_imag(x) ** 2  # (B, F, T)
        logspec = torch.log10(power + 1e-10).transpose(1, 2)[:, None]  # (B, 1, T, F)
        return self.fc(self.body(logspec).mean(dim=(2, 3)))


class DictOutputNet(nn.Module):
    """Returns PANNs' output dict: {"clipwise_output": sigmoid(logits), "embedding": x}; the
    embedding layer's width is part of the output, so it must not be pruned."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.block1 = conv_bn(1, 32)
        self.block2 = conv_bn(32, 64)
        self.fc1 = nn.Linear(64, 64)
        self.fc_audioset = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.block2(F.avg_pool2d(self.block1(x), 2))
        x = torch.mean(x, dim=3)
        x = torch.amax(x, dim=2) + torch.mean(x, dim=2)
        embedding = F.relu(self.fc1(F.dropout(x, 0.5, self.training)))
        return {"clipwise_output": torch.sigmoid(self.fc_audioset(embedding)),
                "embedding": embedding}


class TinyQuaternionNet(nn.Module):
    """Quaternion convs on a 4-channel input (log-mel and deltas), a real classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = QConv2d(4, 64, 3, padding=1)
        self.bn1 = QBatchNorm2d(64)
        self.conv2 = QConv2d(64, 128, 3, padding=1)
        self.bn2 = QBatchNorm2d(128)
        self.fc = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(F.max_pool2d(x, 2))))
        return self.fc(x.mean(dim=(2, 3)))


def logmel_input(batch: int = 2, frames: int = 32, mels: int = 24, channels: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, frames, mels, generator=torch.Generator().manual_seed(1))


def wave_input(batch: int = 2, samples: int = 4000) -> torch.Tensor:
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(2)) * 0.1


ARCHITECTURES = {  # name -> (model factory, example inputs)
    "resnet": (TinyResNet, lambda: logmel_input()),
    "mobilenet": (TinyMobileNet, lambda: logmel_input()),
    "grouped": (GroupedConvNet, lambda: logmel_input()),
    "wave1d": (WaveNet1d, lambda: wave_input()[:, None, :]),
    "attention": (AttentionPoolNet, lambda: logmel_input()),
    "frozen-frontend": (FrozenFrontEndNet, lambda: wave_input(samples=2048)),
    "dict-output": (DictOutputNet, lambda: logmel_input()),
    "quaternion": (TinyQuaternionNet, lambda: logmel_input(channels=4)),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The model (seeded, eval mode, with non-trivial BN statistics) and its example inputs."""
    factory, inputs = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = factory()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval(), inputs()


@torch.no_grad()
def independent_macs(model: nn.Module, inputs: torch.Tensor) -> int:
    """MACs of the convolutions and linear layers, by hand from the shapes forward hooks see:
    out.numel() * (in_channels / groups) * kernel size for a conv, out.numel() * in_features
    for a linear; a quaternion conv as the real conv it computes. Independent of
    FlopCounterMode, which audioprune.count uses."""
    total = 0
    hooks = []

    def conv_hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        groups = getattr(m, "groups", 1)
        total += out.numel() * (m.in_channels // groups) * math.prod(m.kernel_size)

    def linear_hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    for m in model.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, QConv2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        model(inputs[:1])
    finally:
        for h in hooks:
            h.remove()
    return total


def outputs_of(model: nn.Module, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(inputs)
    return out if isinstance(out, dict) else {"out": out}


def small_cnn() -> tuple[nn.Module, torch.Tensor]:
    """Three conv+BN layers and a head, seeded; BN scales that disagree with the conv norms,
    so a group importance (conv + BN + next input) differs from the root conv's norm."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                          nn.Conv2d(24, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
    with torch.no_grad():  # BN scales that disagree with the conv norms: the group sum matters
        for bn in (model[1], model[4], model[7]):
            bn.weight.copy_(torch.rand(bn.num_features) * 2)
            bn.bias.normal_()
    return model, torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------ full-size nets (planning benchmark)


def _divisible(v: float, by: int = 8) -> int:
    """Round a width to a multiple of `by`, never below 90% of it (MobileNets' rule)."""
    out = max(by, int(v + by / 2) // by * by)
    return out + by if out < 0.9 * v else out


class _MBConv(nn.Module):
    """A MobileNet inverted residual: 1x1 expand (when t > 1), k x k depthwise, optional
    squeeze-excitation, 1x1 linear projection, identity add when shapes allow."""

    def __init__(self, c_in: int, hidden: int, c_out: int, k: int, stride: int, se: bool,
                 act: type[nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != c_in:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()]
        layers += [nn.Conv2d(hidden, hidden, k, stride, k // 2, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), act()]
        if se:
            layers.append(SqueezeExcite(hidden))
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV2Audio(nn.Module):
    """The MobileNetV2 of PANNs' comparison (Sandler et al.'s widths: 32-stem, 17 inverted
    residuals of expansion 6 from 16 to 320 channels, a 1280-channel 1x1 head) on log-mels,
    with PANNs' 1024-unit embedding and 527 AudioSet outputs."""

    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]  # expansion t, channels c, repeats n, stride s

    def __init__(self, classes: int = 527) -> None:
        super().__init__()
        c = 32
        blocks: list[nn.Module] = [conv_bn(1, c, 3, 2)]
        for t, out, n, s in self.SETTING:
            for i in range(n):
                blocks.append(_MBConv(c, c * t, out, 3, s if i == 0 else 1, False, nn.ReLU6))
                c = out
        blocks.append(nn.Sequential(nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280),
                                    nn.ReLU6()))
        self.features = nn.Sequential(*blocks)
        self.fc1 = nn.Linear(1280, 1024)
        self.fc_audioset = nn.Linear(1024, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))
        return self.fc_audioset(F.relu(self.fc1(x)))


class MobileNetV3Audio(nn.Module):
    """EfficientAT's mn04-like net: MobileNetV3-Large (Howard et al.; 15 inverted residuals, SE
    in 8 of them, hard-swish in the later half) at width 0.4 on log-mels, 527 outputs."""

    SETTING = [  # kernel, expanded, out, SE, hard-swish, stride
        (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
        (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
        (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
        (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
        (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1)]

    def __init__(self, width: float = 0.4, classes: int = 527) -> None:
        super().__init__()
        c = _divisible(16 * width)
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(1, c, 3, 2, 1, bias=False),
                                                 nn.BatchNorm2d(c), nn.Hardswish())]
        for k, hidden, out, se, hs, s in self.SETTING:
            out_c = _divisible(out * width)
            blocks.append(_MBConv(c, _divisible(hidden * width), out_c, k, s, se,
                                  nn.Hardswish if hs else nn.ReLU))
            c = out_c
        last = _divisible(960 * width)
        blocks.append(nn.Sequential(nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last),
                                    nn.Hardswish()))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Linear(last, 1280), nn.Hardswish(),
                                        nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


FULL_SIZE = {  # name -> (model factory, example inputs: 10 s of 64-mel log-mels, 100 frames/s)
    "mobilenetv2": (MobileNetV2Audio, lambda: logmel_input(batch=1, frames=1001, mels=64)),
    "mn04-like": (MobileNetV3Audio, lambda: logmel_input(batch=1, frames=1001, mels=64)),
}
