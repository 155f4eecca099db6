#pragma version ~=0.4.3
#pragma evm-version shanghai
"""
@title metisnet task manager
@notice Escrow, votes, committee draw, acknowledgements, verdicts and settlement of tasks
        (DESIGN.md §7). Lifecycle:
        Submitted -> Approved -> CommitteeDrawn -> Running -> Settled, or Rejected / Failed.
        1. create_task escrows the fee and draws this task's validator set: every staked data
           node while there are at most `validator_set_size` of them, otherwise that many
           distinct data nodes drawn by stake (O(size * log n) gas, independent of n).
        2. Each named dataset's owner votes with vote_dataset; validators vote with vote.
           Every vote carries a commitment keccak256(abi_encode(seed, voter)). Approved once
           every named dataset's owner approved and validators holding more than 2/3 of the
           validator set's (snapshotted) stake approved.
        3. Voters reveal their seeds; the committee is drawn by stake from the XOR of the
           revealed seeds, once every committed voter revealed, or after the reveal deadline
           once more than 2/3 of them revealed. `metisnet.chain.draw.draw_committee` reproduces it.
        4. Members acknowledge before a deadline; `redraw` slashes members that never
           acknowledged and replaces them.
        5. A result receiver posts the result commitment and the verdict. Success pays the
           committee and the dataset owners; failure refunds the requester, and a failure
           naming a committee member with an evidence hash slashes that member.
        Payments are pull payments: amounts are credited and collected with `withdraw`.
"""

ROLE_DATA: constant(uint8) = 1
ROLE_COMPUTE: constant(uint8) = 2
MAX_DATASETS: constant(uint256) = 8
MAX_RECEIVERS: constant(uint256) = 4
MAX_COMMITTEE: constant(uint256) = 7
MAX_VALIDATORS: constant(uint256) = 16
MAX_DRAW_ATTEMPTS: constant(uint256) = 64
BPS: constant(uint256) = 10000

SUBMITTED: constant(uint8) = 1
APPROVED: constant(uint8) = 2
COMMITTEE_DRAWN: constant(uint8) = 3
RUNNING: constant(uint8) = 4
SETTLED: constant(uint8) = 5
REJECTED: constant(uint8) = 6
FAILED: constant(uint8) = 7

interface NodeRegistry:
    def is_active(node: address, role: uint8) -> bool: view
    def stake_of(node: address) -> uint256: view
    def node_count(role: uint8) -> uint256: view
    def node_at(role: uint8, index: uint256) -> address: view
    def draw(role: uint8, r: uint256) -> address: view
    def slash(node: address, amount: uint256) -> uint256: nonpayable

interface DatasetRegistry:
    def owner_of(dataset_id: bytes32) -> address: view
    def is_active(dataset_id: bytes32) -> bool: view

struct Task:
    requester: address
    spec_hash: bytes32
    fee: uint256
    state: uint8
    committee_size: uint256
    datasets: DynArray[bytes32, MAX_DATASETS]
    receivers: DynArray[address, MAX_RECEIVERS]
    validator_total: uint256
    approve_weight: uint256
    reject_weight: uint256
    owner_approvals: uint256
    committers: uint256
    reveals: uint256
    seed: bytes32
    round: uint256
    committee: DynArray[address, MAX_COMMITTEE]
    acks: uint256
    vote_deadline: uint256
    reveal_deadline: uint256
    ack_deadline: uint256
    result_deadline: uint256
    result_commitment: bytes32

event TaskCreated:
    task_id: indexed(uint256)
    requester: indexed(address)
    spec_hash: bytes32
    fee: uint256
    validators: DynArray[address, MAX_VALIDATORS]

event Voted:
    task_id: indexed(uint256)
    voter: indexed(address)
    dataset_id: bytes32
    approve: bool
    seed_commitment: bytes32

event TaskApproved:
    task_id: indexed(uint256)
    reveal_deadline: uint256

event SeedRevealed:
    task_id: indexed(uint256)
    voter: indexed(address)
    seed: bytes32

event CommitteeDrawn:
    task_id: indexed(uint256)
    round: uint256
    seed: bytes32
    committee: DynArray[address, MAX_COMMITTEE]
    ack_deadline: uint256

event Acknowledged:
    task_id: indexed(uint256)
    member: indexed(address)

event TaskRunning:
    task_id: indexed(uint256)
    result_deadline: uint256

event VerdictPosted:
    task_id: indexed(uint256)
    receiver: indexed(address)
    success: bool
    result_commitment: bytes32
    cheater: address
    evidence_hash: bytes32

event TaskClosed:
    task_id: indexed(uint256)
    state: uint8
    reason: String[64]

event Credited:
    account: indexed(address)
    task_id: indexed(uint256)
    amount: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

event MemberSlashed:
    task_id: indexed(uint256)
    member: indexed(address)
    amount: uint256
    evidence_hash: bytes32

REGISTRY: public(immutable(address))
DATASETS: public(immutable(address))
validator_set_size: public(immutable(uint256))
default_committee_size: public(immutable(uint256))
compute_share_bps: public(immutable(uint256))
vote_window: public(immutable(uint256))
reveal_window: public(immutable(uint256))
ack_window: public(immutable(uint256))
result_window: public(immutable(uint256))
no_show_penalty: public(immutable(uint256))
cheat_penalty: public(immutable(uint256))
max_redraws: public(immutable(uint256))

task_count: public(uint256)
escrow_total: public(uint256)
credit_total: public(uint256)
credits: public(HashMap[address, uint256])

tasks: HashMap[uint256, Task]
validators: HashMap[uint256, DynArray[address, MAX_VALIDATORS]]
validator_weight: public(HashMap[uint256, HashMap[address, uint256]])
named: HashMap[uint256, HashMap[bytes32, bool]]
owner_voted: HashMap[uint256, HashMap[bytes32, bool]]
validator_voted: HashMap[uint256, HashMap[address, bool]]
commitments: public(HashMap[uint256, HashMap[address, bytes32]])
revealed: HashMap[uint256, HashMap[address, bool]]
acked: HashMap[uint256, HashMap[address, bool]]
is_receiver: HashMap[uint256, HashMap[address, bool]]


@deploy
def __init__(
    registry: address,
    datasets: address,
    validator_set_size_: uint256,
    committee_size_: uint256,
    compute_share_bps_: uint256,
    windows: uint256[4],
    no_show_penalty_: uint256,
    cheat_penalty_: uint256,
    max_redraws_: uint256,
):
    assert validator_set_size_ >= 1 and validator_set_size_ <= MAX_VALIDATORS, "bad validator set size"
    assert committee_size_ >= 1 and committee_size_ <= MAX_COMMITTEE, "bad committee size"
    assert compute_share_bps_ <= BPS, "bad compute share"
    REGISTRY = registry
    DATASETS = datasets
    validator_set_size = validator_set_size_
    default_committee_size = committee_size_
    compute_share_bps = compute_share_bps_
    vote_window = windows[0]
    reveal_window = windows[1]
    ack_window = windows[2]
    result_window = windows[3]
    no_show_penalty = no_show_penalty_
    cheat_penalty = cheat_penalty_
    max_redraws = max_redraws_


@external
@payable
def __default__():
    # slashed stake arrives here from the registry and is credited by the caller
    assert msg.sender == REGISTRY, "unexpected payment"


# ---------------------------------------------------------------- internal helpers

@internal
def _credit(account: address, task_id: uint256, amount: uint256):
    if amount == 0:
        return
    self.credits[account] += amount
    self.credit_total += amount
    log Credited(account=account, task_id=task_id, amount=amount)


@internal
def _close(task_id: uint256, state: uint8, reason: String[64]):
    """Leave the task in a final state; the escrowed fee is refunded unless it settled."""
    fee: uint256 = self.tasks[task_id].fee
    self.tasks[task_id].state = state
    self.escrow_total -= fee
    if state != SETTLED:
        self._credit(self.tasks[task_id].requester, task_id, fee)
    log TaskClosed(task_id=task_id, state=state, reason=reason)


@internal
def _slash(task_id: uint256, member: address, amount: uint256, evidence_hash: bytes32):
    taken: uint256 = extcall NodeRegistry(REGISTRY).slash(member, amount)
    log MemberSlashed(task_id=task_id, member=member, amount=taken, evidence_hash=evidence_hash)
    self._credit(self.tasks[task_id].requester, task_id, taken)


@internal
def _draw_validators(task_id: uint256, entropy: bytes32) -> uint256:
    n: uint256 = staticcall NodeRegistry(REGISTRY).node_count(ROLE_DATA)
    total: uint256 = 0
    if n <= validator_set_size:
        for i: uint256 in range(MAX_VALIDATORS):
            if i >= n:
                break
            v: address = staticcall NodeRegistry(REGISTRY).node_at(ROLE_DATA, i + 1)
            w: uint256 = staticcall NodeRegistry(REGISTRY).stake_of(v)
            if w > 0:
                self.validators[task_id].append(v)
                self.validator_weight[task_id][v] = w
                total += w
    else:
        found: uint256 = 0
        for a: uint256 in range(MAX_DRAW_ATTEMPTS):
            if found >= validator_set_size:
                break
            r: uint256 = convert(keccak256(abi_encode(entropy, a)), uint256)
            v: address = staticcall NodeRegistry(REGISTRY).draw(ROLE_DATA, r)
            if self.validator_weight[task_id][v] == 0:
                w: uint256 = staticcall NodeRegistry(REGISTRY).stake_of(v)
                self.validators[task_id].append(v)
                self.validator_weight[task_id][v] = w
                total += w
                found += 1
    return total


@view
@internal
def _draw_members(
    task_id: uint256,
    seed: bytes32,
    round: uint256,
    needed: uint256,
    exclude: DynArray[address, MAX_COMMITTEE],
) -> DynArray[address, MAX_COMMITTEE]:
    out: DynArray[address, MAX_COMMITTEE] = []
    base: bytes32 = keccak256(abi_encode(seed, task_id, round))
    for a: uint256 in range(MAX_DRAW_ATTEMPTS):
        if len(out) >= needed:
            break
        r: uint256 = convert(keccak256(abi_encode(base, a)), uint256)
        c: address = staticcall NodeRegistry(REGISTRY).draw(ROLE_COMPUTE, r)
        if c in out or c in exclude:
            continue
        out.append(c)
    return out


@internal
def _record_commitment(task_id: uint256, seed_commitment: bytes32):
    assert seed_commitment != empty(bytes32), "empty seed commitment"
    prev: bytes32 = self.commitments[task_id][msg.sender]
    if prev == empty(bytes32):
        self.commitments[task_id][msg.sender] = seed_commitment
        self.tasks[task_id].committers += 1
    else:
        assert prev == seed_commitment, "seed commitment differs from earlier vote"


@internal
def _check_voting(task_id: uint256):
    assert self.tasks[task_id].state == SUBMITTED, "task is not open for votes"
    assert block.timestamp < self.tasks[task_id].vote_deadline, "voting deadline passed"
    assert staticcall NodeRegistry(REGISTRY).is_active(msg.sender, ROLE_DATA), "not a data node"


@internal
def _maybe_approve(task_id: uint256):
    total: uint256 = self.tasks[task_id].validator_total
    if self.tasks[task_id].owner_approvals == len(self.tasks[task_id].datasets):
        if self.tasks[task_id].approve_weight * 3 > total * 2:
            deadline: uint256 = block.timestamp + reveal_window
            self.tasks[task_id].state = APPROVED
            self.tasks[task_id].reveal_deadline = deadline
            log TaskApproved(task_id=task_id, reveal_deadline=deadline)


# ---------------------------------------------------------------- lifecycle

@external
@payable
@nonreentrant
def create_task(
    spec_hash: bytes32,
    datasets: DynArray[bytes32, MAX_DATASETS],
    receivers: DynArray[address, MAX_RECEIVERS],
    committee_size: uint256,
) -> uint256:
    assert msg.value > 0, "fee required"
    assert spec_hash != empty(bytes32), "empty spec hash"
    assert len(datasets) > 0, "no datasets named"
    assert len(receivers) > 0, "no result receivers"
    size: uint256 = committee_size
    if size == 0:
        size = default_committee_size
    assert size <= MAX_COMMITTEE, "committee too large"
    task_id: uint256 = self.task_count + 1
    self.task_count = task_id
    for d: bytes32 in datasets:
        assert staticcall DatasetRegistry(DATASETS).is_active(d), "dataset not active"
        assert not self.named[task_id][d], "dataset named twice"
        self.named[task_id][d] = True
    for r: address in receivers:
        assert r != empty(address), "zero receiver"
        self.is_receiver[task_id][r] = True
    entropy: bytes32 = keccak256(
        abi_encode(block.prevrandao, blockhash(block.number - 1), task_id, spec_hash)
    )
    total: uint256 = self._draw_validators(task_id, entropy)
    assert total > 0, "no staked validators"
    self.tasks[task_id] = Task(
        requester=msg.sender,
        spec_hash=spec_hash,
        fee=msg.value,
        state=SUBMITTED,
        committee_size=size,
        datasets=datasets,
        receivers=receivers,
        validator_total=total,
        approve_weight=0,
        reject_weight=0,
        owner_approvals=0,
        committers=0,
        reveals=0,
        seed=empty(bytes32),
        round=0,
        committee=[],
        acks=0,
        vote_deadline=block.timestamp + vote_window,
        reveal_deadline=0,
        ack_deadline=0,
        result_deadline=0,
        result_commitment=empty(bytes32),
    )
    self.escrow_total += msg.value
    log TaskCreated(
        task_id=task_id,
        requester=msg.sender,
        spec_hash=spec_hash,
        fee=msg.value,
        validators=self.validators[task_id],
    )
    return task_id


@external
@nonreentrant
def vote_dataset(task_id: uint256, dataset_id: bytes32, approve: bool, seed_commitment: bytes32):
    """@notice The owner of a dataset named by the task approves or rejects its use."""
    self._check_voting(task_id)
    assert self.named[task_id][dataset_id], "dataset not named by this task"
    owner: address = staticcall DatasetRegistry(DATASETS).owner_of(dataset_id)
    assert owner == msg.sender, "not the dataset owner"
    assert not self.owner_voted[task_id][dataset_id], "already voted"
    self.owner_voted[task_id][dataset_id] = True
    self._record_commitment(task_id, seed_commitment)
    log Voted(
        task_id=task_id,
        voter=msg.sender,
        dataset_id=dataset_id,
        approve=approve,
        seed_commitment=seed_commitment,
    )
    if approve:
        self.tasks[task_id].owner_approvals += 1
        self._maybe_approve(task_id)
    else:
        self._close(task_id, REJECTED, "a dataset owner rejected")


@external
@nonreentrant
def vote(task_id: uint256, approve: bool, seed_commitment: bytes32):
    """@notice A member of this task's validator set approves or rejects the task."""
    self._check_voting(task_id)
    weight: uint256 = self.validator_weight[task_id][msg.sender]
    assert weight > 0, "not a validator for this task"
    assert not self.validator_voted[task_id][msg.sender], "already voted"
    self.validator_voted[task_id][msg.sender] = True
    self._record_commitment(task_id, seed_commitment)
    log Voted(
        task_id=task_id,
        voter=msg.sender,
        dataset_id=empty(bytes32),
        approve=approve,
        seed_commitment=seed_commitment,
    )
    if approve:
        self.tasks[task_id].approve_weight += weight
        self._maybe_approve(task_id)
    else:
        self.tasks[task_id].reject_weight += weight
        if self.tasks[task_id].reject_weight * 3 >= self.tasks[task_id].validator_total:
            self._close(task_id, REJECTED, "validators rejected")


@external
def reveal(task_id: uint256, seed: bytes32):
    assert self.tasks[task_id].state == APPROVED, "task is not revealing seeds"
    commitment: bytes32 = self.commitments[task_id][msg.sender]
    assert commitment != empty(bytes32), "no seed commitment from this voter"
    assert not self.revealed[task_id][msg.sender], "seed already revealed"
    assert keccak256(abi_encode(seed, msg.sender)) == commitment, "reveal does not match commitment"
    self.revealed[task_id][msg.sender] = True
    self.tasks[task_id].reveals += 1
    self.tasks[task_id].seed = convert(
        convert(self.tasks[task_id].seed, uint256) ^ convert(seed, uint256), bytes32
    )
    log SeedRevealed(task_id=task_id, voter=msg.sender, seed=seed)


@external
@nonreentrant
def draw_committee(task_id: uint256):
    assert self.tasks[task_id].state == APPROVED, "task is not approved"
    reveals: uint256 = self.tasks[task_id].reveals
    everyone: bool = reveals == self.tasks[task_id].committers
    # after the deadline, more than 2/3 of the committed voters suffice: with fewer than a
    # third faulty, some honest seed is in the XOR
    late: bool = (
        block.timestamp >= self.tasks[task_id].reveal_deadline
        and reveals * 3 > self.tasks[task_id].committers * 2
    )
    assert everyone or late, "not enough seed reveals"
    seed: bytes32 = self.tasks[task_id].seed
    size: uint256 = self.tasks[task_id].committee_size
    members: DynArray[address, MAX_COMMITTEE] = self._draw_members(task_id, seed, 0, size, [])
    assert len(members) == size, "not enough compute nodes"
    deadline: uint256 = block.timestamp + ack_window
    self.tasks[task_id].committee = members
    self.tasks[task_id].state = COMMITTEE_DRAWN
    self.tasks[task_id].ack_deadline = deadline
    log CommitteeDrawn(
        task_id=task_id, round=0, seed=seed, committee=members, ack_deadline=deadline
    )


@external
def acknowledge(task_id: uint256):
    assert self.tasks[task_id].state == COMMITTEE_DRAWN, "task is not awaiting acknowledgements"
    assert msg.sender in self.tasks[task_id].committee, "not a committee member"
    assert not self.acked[task_id][msg.sender], "already acknowledged"
    assert block.timestamp < self.tasks[task_id].ack_deadline, "acknowledgement deadline passed"
    self.acked[task_id][msg.sender] = True
    acks: uint256 = self.tasks[task_id].acks + 1
    self.tasks[task_id].acks = acks
    log Acknowledged(task_id=task_id, member=msg.sender)
    if acks == len(self.tasks[task_id].committee):
        deadline: uint256 = block.timestamp + result_window
        self.tasks[task_id].state = RUNNING
        self.tasks[task_id].result_deadline = deadline
        log TaskRunning(task_id=task_id, result_deadline=deadline)


@external
@nonreentrant
def redraw(task_id: uint256):
    """
    @notice After the acknowledgement deadline: slash every member that never acknowledged
            (the missed deadline is the evidence) and draw replacements, or fail the task
            once `max_redraws` redraws were spent.
    """
    assert self.tasks[task_id].state == COMMITTEE_DRAWN, "task is not awaiting acknowledgements"
    assert block.timestamp >= self.tasks[task_id].ack_deadline, "acknowledgement window still open"
    old: DynArray[address, MAX_COMMITTEE] = self.tasks[task_id].committee
    kept: DynArray[address, MAX_COMMITTEE] = []
    for m: address in old:
        if self.acked[task_id][m]:
            kept.append(m)
        else:
            self._slash(task_id, m, no_show_penalty, empty(bytes32))
    round: uint256 = self.tasks[task_id].round + 1
    if round > max_redraws:
        self._close(task_id, FAILED, "committee never acknowledged")
        return
    seed: bytes32 = self.tasks[task_id].seed
    fresh: DynArray[address, MAX_COMMITTEE] = self._draw_members(
        task_id, seed, round, len(old) - len(kept), old
    )
    if len(fresh) != len(old) - len(kept):
        self._close(task_id, FAILED, "not enough compute nodes to redraw")
        return
    for m: address in fresh:
        kept.append(m)
    deadline: uint256 = block.timestamp + ack_window
    self.tasks[task_id].committee = kept
    self.tasks[task_id].round = round
    self.tasks[task_id].ack_deadline = deadline
    log CommitteeDrawn(
        task_id=task_id, round=round, seed=seed, committee=kept, ack_deadline=deadline
    )


@external
@nonreentrant
def restart(task_id: uint256):
    """
    @notice A result receiver reports that the running committee delivered no result (a
            member was lost mid-task, or the session aborted): a fresh committee is drawn,
            disjoint from the running one, and the task awaits its acknowledgements again.
            Nobody is slashed: a silent member cannot be told apart on chain from the peers
            that stopped because of it. Counts against `max_redraws`; once they are spent,
            the task fails (refund).
    """
    assert self.tasks[task_id].state == RUNNING, "task is not running"
    assert self.is_receiver[task_id][msg.sender], "not a result receiver"
    old: DynArray[address, MAX_COMMITTEE] = self.tasks[task_id].committee
    round: uint256 = self.tasks[task_id].round + 1
    if round > max_redraws:
        self._close(task_id, FAILED, "committee lost too often")
        return
    seed: bytes32 = self.tasks[task_id].seed
    fresh: DynArray[address, MAX_COMMITTEE] = self._draw_members(
        task_id, seed, round, len(old), old
    )
    if len(fresh) != len(old):
        self._close(task_id, FAILED, "not enough compute nodes to restart")
        return
    for m: address in fresh:
        self.acked[task_id][m] = False  # a member of an earlier round acknowledges anew
    deadline: uint256 = block.timestamp + ack_window
    self.tasks[task_id].committee = fresh
    self.tasks[task_id].round = round
    self.tasks[task_id].acks = 0
    self.tasks[task_id].state = COMMITTEE_DRAWN
    self.tasks[task_id].ack_deadline = deadline
    log CommitteeDrawn(
        task_id=task_id, round=round, seed=seed, committee=fresh, ack_deadline=deadline
    )


@external
@nonreentrant
def submit_verdict(
    task_id: uint256,
    result_commitment: bytes32,
    success: bool,
    cheater: address,
    evidence_hash: bytes32,
):
    """
    @notice A result receiver posts the result commitment and the verdict, which settles the
            task. On success the fee is split between the committee (compute_share_bps) and
            the named datasets' owners; on failure it is refunded, and a named cheater (a
            committee member, with the hash of the evidence) is slashed by cheat_penalty.
    """
    assert self.tasks[task_id].state == RUNNING, "task is not running"
    assert self.is_receiver[task_id][msg.sender], "not a result receiver"
    if cheater != empty(address):
        assert not success, "a successful verdict cannot name a cheater"
        assert evidence_hash != empty(bytes32), "slashing needs evidence"
        assert cheater in self.tasks[task_id].committee, "cheater is not a committee member"
    self.tasks[task_id].result_commitment = result_commitment
    log VerdictPosted(
        task_id=task_id,
        receiver=msg.sender,
        success=success,
        result_commitment=result_commitment,
        cheater=cheater,
        evidence_hash=evidence_hash,
    )
    if not success:
        if cheater != empty(address):
            self._slash(task_id, cheater, cheat_penalty, evidence_hash)
        self._close(task_id, FAILED, "receiver reported failure")
        return
    fee: uint256 = self.tasks[task_id].fee
    committee: DynArray[address, MAX_COMMITTEE] = self.tasks[task_id].committee
    datasets: DynArray[bytes32, MAX_DATASETS] = self.tasks[task_id].datasets
    per_member: uint256 = fee * compute_share_bps // BPS // len(committee)
    per_dataset: uint256 = (fee - per_member * len(committee)) // len(datasets)
    for m: address in committee:
        self._credit(m, task_id, per_member)
    for d: bytes32 in datasets:
        owner: address = staticcall DatasetRegistry(DATASETS).owner_of(d)
        self._credit(owner, task_id, per_dataset)
    dust: uint256 = fee - per_member * len(committee) - per_dataset * len(datasets)
    self._credit(self.tasks[task_id].requester, task_id, dust)
    self.tasks[task_id].state = SETTLED
    self.escrow_total -= fee
    log TaskClosed(task_id=task_id, state=SETTLED, reason="settled")


@external
@nonreentrant
def expire(task_id: uint256):
    """@notice Anyone may close a task whose current stage ran past its deadline (refund)."""
    state: uint8 = self.tasks[task_id].state
    now: uint256 = block.timestamp
    if state == SUBMITTED and now >= self.tasks[task_id].vote_deadline:
        self._close(task_id, REJECTED, "voting deadline passed")
    elif state == APPROVED and now >= self.tasks[task_id].reveal_deadline and self.tasks[task_id].reveals * 3 <= self.tasks[task_id].committers * 2:
        self._close(task_id, FAILED, "too few seeds were revealed")
    elif state == APPROVED and now >= self.tasks[task_id].reveal_deadline + ack_window:
        # seeds were revealed but no committee could be drawn (too few compute nodes)
        self._close(task_id, FAILED, "no committee was drawn in time")
    elif state == RUNNING and now >= self.tasks[task_id].result_deadline:
        self._close(task_id, FAILED, "no verdict before the result deadline")
    else:
        raise "task cannot expire now"


@external
@nonreentrant
def withdraw():
    amount: uint256 = self.credits[msg.sender]
    assert amount > 0, "nothing to withdraw"
    self.credits[msg.sender] = 0
    self.credit_total -= amount
    log Withdrawn(account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)


# ---------------------------------------------------------------- views

@view
@external
def get_task(task_id: uint256) -> Task:
    return self.tasks[task_id]


@view
@external
def get_validators(task_id: uint256) -> DynArray[address, MAX_VALIDATORS]:
    return self.validators[task_id]


@view
@external
def has_acknowledged(task_id: uint256, member: address) -> bool:
    return self.acked[task_id][member]


@view
@external
def has_revealed(task_id: uint256, voter: address) -> bool:
    return self.revealed[task_id][voter]
