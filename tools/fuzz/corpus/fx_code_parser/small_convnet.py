NoneType = type(None)
from math import nan
import torch.fx._pytree as fx_pytree
import torch
from math import inf
import torch.utils._pytree as pytree
from torch import device


def forward(self, x):
    conv1 = self.conv1(x);  x = None
    bn1 = self.bn1(conv1);  conv1 = None
    relu = self.relu(bn1);  bn1 = None
    maxpool = self.maxpool(relu);  relu = None
    conv2 = self.conv2(maxpool)
    bn2 = self.bn2(conv2);  conv2 = None
    add = bn2 + maxpool;  bn2 = maxpool = None
    relu_1 = self.relu(add);  add = None
    avgpool = self.avgpool(relu_1);  relu_1 = None
    flatten = torch.flatten(avgpool, 1);  avgpool = None
    fc = self.fc(flatten);  flatten = None
    return fc
    