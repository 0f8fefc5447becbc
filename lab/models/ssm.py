class SsmService:
    def __init__(self, world):
        self.world = world

    def add_instance(self, instance):
        pass
