#pragma version ~=0.4.3
#pragma evm-version shanghai
"""
@title metisnet node registry and staking
@notice Data nodes and compute nodes register under their own address (the node id) with a
        stake in the native currency. Stakes can be topped up and unbonded; unbonded stake is
        withdrawable after `unbond_delay` seconds. Only the task manager may slash, and it does
        so only on evidence it accepted (a receiver's verdict naming a cheater, or a committee
        member that never acknowledged before its deadline).
@dev    For stake-weighted draws the active stakes of each role are kept in a Fenwick tree
        (binary indexed tree) of fixed capacity TREE_SIZE: an update and a draw both cost
        O(log TREE_SIZE) storage reads, independent of how many nodes are registered.
        A draw maps r in [0, total) to the node with the smallest index i whose prefix sum
        of stakes exceeds r; `metisnet.chain.draw` reproduces this in Python.
"""

ROLE_DATA: constant(uint8) = 1
ROLE_COMPUTE: constant(uint8) = 2
TREE_SIZE: constant(uint256) = 1024
TREE_LOG: constant(uint256) = 10

struct Node:
    role: uint8
    cert_hash: bytes32
    endpoint: String[128]
    capacity: uint256
    stake: uint256
    unbonding: uint256
    unbond_at: uint256
    index: uint256

event NodeRegistered:
    node: indexed(address)
    role: uint8
    index: uint256
    stake: uint256
    cert_hash: bytes32
    endpoint: String[128]
    capacity: uint256

event NodeUpdated:
    node: indexed(address)
    cert_hash: bytes32
    endpoint: String[128]
    capacity: uint256

event StakeAdded:
    node: indexed(address)
    amount: uint256
    stake: uint256

event UnbondStarted:
    node: indexed(address)
    amount: uint256
    unbond_at: uint256

event StakeWithdrawn:
    node: indexed(address)
    amount: uint256

event NodeSlashed:
    node: indexed(address)
    amount: uint256

admin: public(address)
task_manager: public(address)
min_stake: public(uint256)
unbond_delay: public(uint256)
total_bonded: public(uint256)
node_count: public(HashMap[uint8, uint256])
node_at: public(HashMap[uint8, HashMap[uint256, address]])
total_stake: public(HashMap[uint8, uint256])

nodes: HashMap[address, Node]
tree: HashMap[uint8, HashMap[uint256, uint256]]


@deploy
def __init__(min_stake: uint256, unbond_delay: uint256):
    assert min_stake > 0, "min stake must be positive"
    self.admin = msg.sender
    self.min_stake = min_stake
    self.unbond_delay = unbond_delay


@external
def set_task_manager(task_manager: address):
    assert msg.sender == self.admin, "only the admin"
    assert self.task_manager == empty(address), "task manager already set"
    assert task_manager != empty(address), "zero address"
    self.task_manager = task_manager


@internal
def _tree_add(role: uint8, index: uint256, amount: uint256):
    i: uint256 = index
    for _k: uint256 in range(TREE_LOG + 1):
        if i > TREE_SIZE:
            break
        self.tree[role][i] += amount
        i += i & unsafe_sub(0, i)


@internal
def _tree_sub(role: uint8, index: uint256, amount: uint256):
    i: uint256 = index
    for _k: uint256 in range(TREE_LOG + 1):
        if i > TREE_SIZE:
            break
        self.tree[role][i] -= amount
        i += i & unsafe_sub(0, i)


@internal
def _add_stake(node: address, amount: uint256):
    role: uint8 = self.nodes[node].role
    self.nodes[node].stake += amount
    self.total_stake[role] += amount
    self.total_bonded += amount
    self._tree_add(role, self.nodes[node].index, amount)


@external
@payable
def register(role: uint8, cert_hash: bytes32, endpoint: String[128], capacity: uint256):
    assert role == ROLE_DATA or role == ROLE_COMPUTE, "unknown role"
    assert self.nodes[msg.sender].role == 0, "node id already used"
    assert msg.value >= self.min_stake, "stake below minimum"
    index: uint256 = self.node_count[role] + 1
    assert index <= TREE_SIZE, "registry full for this role"
    self.node_count[role] = index
    self.node_at[role][index] = msg.sender
    self.nodes[msg.sender] = Node(
        role=role,
        cert_hash=cert_hash,
        endpoint=endpoint,
        capacity=capacity,
        stake=0,
        unbonding=0,
        unbond_at=0,
        index=index,
    )
    self._add_stake(msg.sender, msg.value)
    log NodeRegistered(
        node=msg.sender,
        role=role,
        index=index,
        stake=msg.value,
        cert_hash=cert_hash,
        endpoint=endpoint,
        capacity=capacity,
    )


@external
def update_node(cert_hash: bytes32, endpoint: String[128], capacity: uint256):
    assert self.nodes[msg.sender].role != 0, "not a registered node"
    self.nodes[msg.sender].cert_hash = cert_hash
    self.nodes[msg.sender].endpoint = endpoint
    self.nodes[msg.sender].capacity = capacity
    log NodeUpdated(node=msg.sender, cert_hash=cert_hash, endpoint=endpoint, capacity=capacity)


@external
@payable
def top_up():
    assert self.nodes[msg.sender].role != 0, "not a registered node"
    assert msg.value > 0, "no value sent"
    assert self.nodes[msg.sender].stake + msg.value >= self.min_stake, "stake below minimum"
    self._add_stake(msg.sender, msg.value)
    log StakeAdded(node=msg.sender, amount=msg.value, stake=self.nodes[msg.sender].stake)


@external
def unbond(amount: uint256):
    role: uint8 = self.nodes[msg.sender].role
    assert role != 0, "not a registered node"
    stake: uint256 = self.nodes[msg.sender].stake
    assert amount > 0, "nothing to unbond"
    assert amount <= stake, "amount exceeds stake"
    assert stake - amount == 0 or stake - amount >= self.min_stake, "remaining stake below minimum"
    self.nodes[msg.sender].stake = stake - amount
    self.nodes[msg.sender].unbonding += amount
    unbond_at: uint256 = block.timestamp + self.unbond_delay
    self.nodes[msg.sender].unbond_at = unbond_at
    self.total_stake[role] -= amount
    self._tree_sub(role, self.nodes[msg.sender].index, amount)
    log UnbondStarted(node=msg.sender, amount=amount, unbond_at=unbond_at)


@external
@nonreentrant
def withdraw():
    amount: uint256 = self.nodes[msg.sender].unbonding
    assert amount > 0, "nothing to withdraw"
    assert block.timestamp >= self.nodes[msg.sender].unbond_at, "stake is still unbonding"
    self.nodes[msg.sender].unbonding = 0
    self.total_bonded -= amount
    log StakeWithdrawn(node=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)


@external
@nonreentrant
def slash(node: address, amount: uint256) -> uint256:
    """
    @notice Take up to `amount` from `node` (active stake first, then unbonding stake) and
            send it to the task manager, which credits it. Returns the amount taken.
    """
    assert msg.sender == self.task_manager, "only the task manager may slash"
    role: uint8 = self.nodes[node].role
    assert role != 0, "not a registered node"
    taken: uint256 = min(amount, self.nodes[node].stake)
    if taken > 0:
        self.nodes[node].stake -= taken
        self.total_stake[role] -= taken
        self._tree_sub(role, self.nodes[node].index, taken)
    rest: uint256 = min(amount - taken, self.nodes[node].unbonding)
    self.nodes[node].unbonding -= rest
    taken += rest
    self.total_bonded -= taken
    log NodeSlashed(node=node, amount=taken)
    if taken > 0:
        raw_call(msg.sender, b"", value=taken)
    return taken


@view
@internal
def _find(role: uint8, r: uint256) -> uint256:
    pos: uint256 = 0
    rem: uint256 = r
    step: uint256 = TREE_SIZE
    for _k: uint256 in range(TREE_LOG + 1):
        nxt: uint256 = pos + step
        if nxt <= TREE_SIZE:
            w: uint256 = self.tree[role][nxt]
            if w <= rem:
                pos = nxt
                rem -= w
        step = step >> 1
    return pos + 1


@view
@external
def draw(role: uint8, r: uint256) -> address:
    """
    @notice The node of `role` hit by the random number `r`, weighted by active stake:
            the smallest index i with stake[1] + ... + stake[i] > r mod total.
    """
    total: uint256 = self.total_stake[role]
    assert total > 0, "no staked nodes of this role"
    return self.node_at[role][self._find(role, r % total)]


@view
@external
def get_node(node: address) -> Node:
    return self.nodes[node]


@view
@external
def role_of(node: address) -> uint8:
    return self.nodes[node].role


@view
@external
def stake_of(node: address) -> uint256:
    return self.nodes[node].stake


@view
@external
def is_active(node: address, role: uint8) -> bool:
    return self.nodes[node].role == role and self.nodes[node].stake > 0
