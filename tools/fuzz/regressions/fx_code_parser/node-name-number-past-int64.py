def forward(self, x):
    add_99999999999999999999 = x + 1
    return add_99999999999999999999
