class DrsService:
    def __init__(self, world):
        self.world = world

    def seed_region(self, account_id, region, state):
        pass

    def register_existing(self, instance, account_id, region, replication_state):
        pass
