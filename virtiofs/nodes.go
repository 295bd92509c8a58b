package virtiofs

import (
	"sync"

	"golang.org/x/sys/unix"
)

// rootID is the node id FUSE gives the mount's root: here the virtual
// directory whose entries are the shares.
const rootID = 1

// inodeKey identifies an inode within one share: the same host inode
// reached through two shares (one read-only, one not) is two nodes.
type inodeKey struct {
	share    *share
	dev, ino uint64
}

// node is an inode the guest knows: an O_PATH descriptor and the number of
// lookups the guest has not forgotten yet. The virtual root has no
// descriptor and no share.
type node struct {
	id      uint64
	fd      int
	key     inodeKey
	mode    uint32
	nlookup uint64
	share   *share
	// pinned nodes (a share's root) outlive the guest's lookups: they go
	// when the share is removed.
	pinned bool
}

// nodeTable maps the server's node ids to open inodes. Ids are never
// reused, so a stale id from the guest finds nothing rather than another
// file; a second lookup of the same inode returns the same id.
type nodeTable struct {
	mu     sync.Mutex
	byID   map[uint64]*node
	byKey  map[inodeKey]*node
	nextID uint64
	maxFDs int
}

func newNodeTable(maxFDs int) *nodeTable {
	t := &nodeTable{byID: map[uint64]*node{}, byKey: map[inodeKey]*node{}, nextID: rootID + 1, maxFDs: maxFDs}
	t.byID[rootID] = &node{id: rootID, fd: -1, mode: unix.S_IFDIR | 0o555, nlookup: 1, pinned: true}
	return t
}

func (t *nodeTable) get(id uint64) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// add registers an inode of share sh (taking ownership of fd) and counts
// the lookup. It returns nil, with fd closed, when the table is full: the
// guest cannot make the VMM hold unbounded descriptors.
func (t *nodeTable) add(sh *share, fd int, st unix.Stat_t) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := inodeKey{sh, st.Dev, st.Ino}
	if n, ok := t.byKey[key]; ok {
		unix.Close(fd)
		n.nlookup++
		return n
	}
	if len(t.byID) >= t.maxFDs {
		unix.Close(fd)
		return nil
	}
	n := &node{id: t.nextID, fd: fd, key: key, mode: st.Mode, nlookup: 1, share: sh}
	t.nextID++
	t.byID[n.id], t.byKey[key] = n, n
	return n
}

// ref counts one more lookup of a node the guest reaches without a host
// lookup (a share's root, found in the virtual root).
func (t *nodeTable) ref(n *node) {
	t.mu.Lock()
	n.nlookup++
	t.mu.Unlock()
}

// forget drops count lookups (saturating at zero) and closes the inode
// when none are left, unless it is pinned.
func (t *nodeTable) forget(id, count uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.byID[id]
	if !ok {
		return
	}
	if count >= n.nlookup {
		n.nlookup = 0
	} else {
		n.nlookup -= count
	}
	if n.nlookup == 0 && !n.pinned {
		delete(t.byID, id)
		delete(t.byKey, n.key)
		unix.Close(n.fd)
	}
}

// dropShare closes every node of sh; the guest's ids for them go stale.
func (t *nodeTable) dropShare(sh *share) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, n := range t.byID {
		if n.share == sh {
			delete(t.byID, id)
			delete(t.byKey, n.key)
			unix.Close(n.fd)
		}
	}
}

func (t *nodeTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, n := range t.byID {
		if n.fd >= 0 {
			unix.Close(n.fd)
		}
		delete(t.byID, id)
	}
	t.byKey = map[inodeKey]*node{}
}
