/**
 * Seeds that once found a bug, kept so the bug stays fixed. Each runs first in
 * the simulation test; a new bug the campaign finds gets its seed added here
 * with what it found.
 */
export const REGRESSION_SEEDS: Array<{ seed: number; nodes?: number; found: string }> = [
  {
    seed: 18,
    found:
      'epochs did not grow: n3 crashed holding 198.18.1.1 at epoch 1 and n2 took it over at epoch 1 again, because a dead ' +
      "holder's holdings leave the view and a node remembered only its own epochs (fixed in VipEngine.rememberEpochs)",
  },
  {
    seed: 20,
    found: 'epochs did not grow after a graceful leave and a power loss: n3, n1 and n4 each acquired 198.18.1.1 at epoch 1 in turn',
  },
  {
    seed: 19752,
    found:
      'clients kept pointing at the loser of a clash: n1 took 198.18.1.2 while n2 was stopped (SIGSTOP) with its link down, ' +
      'n2 woke, kept it as the better claim, and never announced it again (fixed: the winner of a clash, and a holder whose link ' +
      'comes back, re-announce)',
  },
  {
    seed: 19816,
    found:
      "under 90% loss n3 acquired 198.18.1.1 at epoch 4 though it had heard epoch 4: the holdings document of a peer that was not " +
      "live completed without a 'change' event, so the engine never saw those epochs (fixed in Membership.onChunk)",
  },
  {
    seed: 725,
    found:
      'a VIP stayed unserved for 1.6 s: n1 gave up an acquisition after a failed probe, but its take-down never published, ' +
      'so peers saw n1 still claiming the VIP and waited (fixed: a take-down publishes)',
  },
  {
    seed: 144,
    found:
      "no node served three VIPs while n1's process was dead without its reaper: n2 (booted after n1 died, so never heard it) " +
      "found n1's leftover aliases answering its probes and took them for a live holder's (fixed: a cluster address that " +
      'refuses our heartbeats, matched through the kernel neighbour table, proves the aliases are leftovers)',
  },
  {
    seed: 810,
    found:
      "n3 took 198.18.1.1 from the live n2: n2's host had refused n3's heartbeats while n2 was restarting, n3 could not hear " +
      "n2 since, and the old refusal still counted as proof that n2's aliases were leftovers (fixed: refusal evidence expires " +
      'after dead-after without a new refusal)',
  },
  {
    seed: 203180,
    found:
      "n2 took three VIPs from the live n1: n1 had gone down on a refusal, restarted while n2's link was down, and n2 (deaf since) " +
      'still counted that old peer-down as proof (fixed: only a current refusal of the address proves a leftover)',
  },
  {
    seed: 201931,
    found:
      "a VIP went unserved for 900 ms after its holder lost power: the node its probes had been answered by backed off " +
      "'held-on-wire' with doubling, and nothing told it the holder was gone (fixed: held-on-wire retries every two dead-after periods)",
  },
  {
    seed: 203079,
    found:
      "four VIPs went unserved after their holder crashed without its reaper: the peer blocked by its leftover aliases learnt of " +
      'the refusal but kept its back-off (fixed: a newly refused address ends held-on-wire back-offs)',
  },
  {
    seed: 318815,
    found:
      "n4 claimed 198.18.1.3 at epoch 1 after hearing epoch 1 during its probe: n2's claim arrived and was released within the " +
      'probe, and the claim step only looked at the peers as they were then (fixed: every epoch heard is kept and outbid)',
  },
  {
    seed: 400637,
    found:
      'n4 re-acquired 198.18.1.4 at epoch 3, its own last claim, after a release for lost quorum: the claim had been raised ' +
      'during its probe above a peer\'s, and only the planned epoch was remembered (fixed: a raised claim is remembered)',
  },
  {
    seed: 309285,
    found:
      'n3 rebooted and heard n2 only as it left: it counted neither n2 nor an unheard configured peer for it, found a majority ' +
      'that n1 (which knew n2) did not, and named n1 owner of a VIP n1 would not serve without quorum (fixed: every peer in the table counts)',
  },
  // The same cause, found by earlier campaigns and open until then.
  { seed: 222859, found: 'an acquisition at an epoch already heard (a claim raised during the probe, not remembered)' },
  { seed: 303574, found: 'an acquisition at an epoch already heard (a claim raised during the probe, not remembered)' },
  { seed: 319690, found: 'an acquisition at an epoch already heard (a claim raised during the probe, not remembered)' },
];
