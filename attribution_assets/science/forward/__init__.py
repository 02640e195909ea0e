"""Forward model: the Gaussian plume, the instrument operators, observation blocks, unit absorption."""
